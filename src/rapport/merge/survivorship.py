"""Which customer's value each field of a merged customer takes.

One table, :data:`FIELD_RULES`, declares the rule per field:

- ``most_recent``: the non-empty value of the customer updated last (``updated_at``);
- ``most_complete``: the longest non-empty value (a full name beats an initial), then most recent;
- ``most_trusted``: the non-empty value of the customer whose ``acquisition_source`` ranks best in
  ``RAPPORT_MERGE_SOURCE_RANKING`` (unlisted or empty sources rank last), then most recent.

Every rule falls back to the survivor on a tie, and an empty value never beats a non-empty one.
Custom attributes are decided per key with :data:`ATTRIBUTE_RULE`. The caller may override any
field (``{"city": 42}``, or ``{"attributes.vip_level": 42}`` for one attribute) with the id of the
customer whose value to take, even an empty one. Owner and team stay the survivor's: they decide
who may see the record, and a merge must not move it out of its handlers' scope.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rapport.errors import invalid_field

Rule = Literal["most_recent", "most_complete", "most_trusted"]

FIELD_RULES: Mapping[str, Rule] = {
    "display_name": "most_trusted",
    "family_name": "most_trusted",
    "given_name": "most_trusted",
    "name_latin": "most_trusted",
    "gender": "most_trusted",
    "birth_date": "most_trusted",
    "occupation": "most_recent",
    "organisation_id": "most_recent",
    "region": "most_recent",
    "city": "most_recent",
    "preferred_language": "most_recent",
    "preferred_channel": "most_recent",
    "acquisition_source": "most_trusted",
    "lifecycle_stage": "most_recent",
}
ATTRIBUTE_RULE: Rule = "most_complete"
ATTRIBUTE_PREFIX = "attributes."


@dataclass(frozen=True, slots=True)
class Choice:
    field: str
    rule: Rule | Literal["override"]
    source_id: int
    value: Any

    def as_record(self) -> dict[str, Any]:
        """What the merge record keeps: which customer and rule, never the value."""
        return {"from": self.source_id, "rule": self.rule}


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, dict)):
        return not value
    return False


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, dict)) else 1


def _rank(source: Any, ranking: Sequence[str]) -> int:
    if isinstance(source, str) and source in ranking:
        return ranking.index(source)
    return len(ranking)


def _pick(
    rule: Rule,
    candidates: list[tuple[dict[str, Any], Any]],
    survivor_id: int,
    ranking: Sequence[str],
) -> tuple[dict[str, Any], Any]:
    """``candidates``: (customer row, value), survivor first. Returns the winning pair."""
    filled = [(row, v) for row, v in candidates if not is_empty(v)]
    if not filled:
        return candidates[0]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)

    def recency(row: dict[str, Any]) -> tuple[dt.datetime, int]:
        # Newest first; the survivor wins a tie, then the lower id (stable, predictable).
        return (row.get("updated_at") or epoch, 1 if row["id"] == survivor_id else 0)

    def key(pair: tuple[dict[str, Any], Any]) -> tuple[Any, ...]:
        row, value = pair
        newest, is_survivor = recency(row)
        stamp = newest.timestamp()
        if rule == "most_recent":
            return (-stamp, -is_survivor, row["id"])
        if rule == "most_complete":
            return (-_size(value), -stamp, -is_survivor, row["id"])
        return (_rank(row.get("acquisition_source"), ranking), -stamp, -is_survivor, row["id"])

    return min(filled, key=key)


def check_overrides(overrides: Mapping[str, int], involved: Sequence[int]) -> None:
    for name, source in overrides.items():
        field = f"overrides.{name}"
        if name not in FIELD_RULES and not (name.startswith(ATTRIBUTE_PREFIX) and len(name) > 11):
            raise invalid_field(field, f"{name!r} is not a field a merge decides", "unknown_field")
        if not isinstance(source, int) or isinstance(source, bool) or source not in involved:
            raise invalid_field(field, "must be the id of the survivor or of a merged customer", "reference")


def decide(
    rows: Sequence[dict[str, Any]],
    survivor_id: int,
    overrides: Mapping[str, int],
    ranking: Sequence[str],
) -> list[Choice]:
    """One choice per field and per custom attribute key present on any customer."""
    by_id = {r["id"]: r for r in rows}
    ordered = [by_id[survivor_id], *(r for r in rows if r["id"] != survivor_id)]
    choices: list[Choice] = []
    for field, rule in FIELD_RULES.items():
        if field in overrides:
            src = overrides[field]
            choices.append(Choice(field, "override", src, by_id[src].get(field)))
            continue
        row, value = _pick(rule, [(r, r.get(field)) for r in ordered], survivor_id, ranking)
        choices.append(Choice(field, rule, row["id"], value))
    keys = sorted({k for r in ordered for k in (r.get("attributes") or {})})
    for key in keys:
        name = ATTRIBUTE_PREFIX + key
        if name in overrides:
            src = overrides[name]
            choices.append(Choice(name, "override", src, (by_id[src].get("attributes") or {}).get(key)))
            continue
        row, value = _pick(
            ATTRIBUTE_RULE, [(r, (r.get("attributes") or {}).get(key)) for r in ordered], survivor_id, ranking
        )
        choices.append(Choice(name, ATTRIBUTE_RULE, row["id"], value))
    return choices


def survivor_values(choices: Sequence[Choice]) -> dict[str, Any]:
    """The column values to write on the survivor (attributes as one dict, empty keys dropped)."""
    values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for c in choices:
        if c.field.startswith(ATTRIBUTE_PREFIX):
            if not is_empty(c.value):
                attributes[c.field[len(ATTRIBUTE_PREFIX) :]] = c.value
        else:
            values[c.field] = c.value
    values["attributes"] = attributes
    if is_empty(values.get("display_name")):
        values.pop("display_name")  # never blank the one required name
    if values.get("lifecycle_stage") is None:
        values.pop("lifecycle_stage")
    return values
