from __future__ import annotations

import datetime as dt
from typing import Any

from rapport.merge.survivorship import FIELD_RULES, decide, survivor_values

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _row(cid: int, days: int, **values: Any) -> dict[str, Any]:
    return {"id": cid, "updated_at": T0 + dt.timedelta(days=days), "attributes": {}, **values}


def _choices(
    rows: list[dict[str, Any]], ranking: tuple[str, ...] = ("manual", "shop", "partner"), **ov: int
) -> Any:
    return {c.field: c for c in decide(rows, rows[0]["id"], ov, ranking)}


def test_every_rule_is_declared_once_per_field() -> None:
    assert set(FIELD_RULES.values()) <= {"most_recent", "most_complete", "most_trusted"}
    assert "owner_id" not in FIELD_RULES and "team_id" not in FIELD_RULES


def test_most_recent_takes_the_last_updated_non_empty_value() -> None:
    rows = [_row(1, 0, city="上海"), _row(2, 5, city="北京"), _row(3, 9, city="  ")]
    assert (_choices(rows)["city"].source_id, _choices(rows)["city"].value) == (2, "北京")


def test_a_tie_goes_to_the_survivor() -> None:
    rows = [_row(1, 3, city="上海"), _row(2, 3, city="北京")]
    assert _choices(rows)["city"].source_id == 1


def test_most_trusted_follows_the_configured_ranking() -> None:
    rows = [
        _row(1, 9, display_name="A", acquisition_source="partner"),
        _row(2, 0, display_name="B", acquisition_source="shop"),
        _row(3, 5, display_name="C", acquisition_source="unknown_app"),
    ]
    assert _choices(rows)["display_name"].value == "B"
    assert _choices(rows, ("partner", "shop"))["display_name"].value == "A"
    # Unlisted sources rank below every listed one, then the most recent wins.
    assert _choices(rows, ("manual",))["display_name"].value == "A"


def test_most_complete_prefers_the_fuller_attribute() -> None:
    rows = [_row(1, 9, attributes={"nick": "小"}), _row(2, 0, attributes={"nick": "小明哥", "vip": None})]
    chosen = _choices(rows)
    assert (chosen["attributes.nick"].source_id, chosen["attributes.nick"].value) == (2, "小明哥")
    assert survivor_values(list(chosen.values()))["attributes"] == {"nick": "小明哥"}


def test_an_override_wins_even_with_an_empty_value() -> None:
    rows = [_row(1, 0, city="上海"), _row(2, 5, city=None)]
    chosen = _choices(rows, city=2)
    assert (chosen["city"].rule, chosen["city"].value) == ("override", None)
