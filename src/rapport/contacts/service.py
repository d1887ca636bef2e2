"""Contact points: normalisation (E.164 phones, lower-case emails), the blind index, one primary.

Values are encrypted at rest by the data-access layer (the columns are declared encrypted);
``value_bidx`` is the keyed digest that answers exact-match searches and duplicate detection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from rapport.access.records import Records, Row
from rapport.access.specs import CONTACT_POINT
from rapport.config import get_settings
from rapport.contacts.schemas import ContactPointIn, ContactPointRead, ContactPointUpdate
from rapport.crud import Resource
from rapport.errors import InvalidInput, invalid_field
from rapport.security.crypto import blind_index
from rapport.text import clean_text, normalise_email, normalise_national_id, normalise_phone


def normalise(kind: str, value: str, loc: list[str | int]) -> tuple[str, str]:
    """(display value, normalised value) or a 422 naming the field."""
    try:
        if kind == "email":
            norm = normalise_email(value)
            return norm, norm
        if kind == "phone":
            e164 = normalise_phone(value, get_settings().default_phone_region)
            return e164, e164
        if kind == "national_id":
            number = normalise_national_id(value)
            return number, number
        text = clean_text(value)
        if not text:
            raise ValueError("must not be blank")
        if kind == "wechat":
            return text, text.lower()
        return text, " ".join(text.lower().split())
    except ValueError as exc:
        raise InvalidInput(
            f"{'.'.join(map(str, loc))}: {exc}",
            errors=[
                {
                    "loc": ["body", *loc],
                    "field": ".".join(map(str, loc)),
                    "message": str(exc),
                    "type": f"{kind}_invalid",
                }
            ],
        ) from None


def contact_values(body: ContactPointIn, customer_id: int, loc: list[str | int]) -> dict[str, Any]:
    values = body.model_dump()
    values["value"], values["value_normalized"] = normalise(body.kind, body.value, [*loc, "value"])
    values["value_bidx"] = blind_index(body.kind, values["value_normalized"])
    values["customer_id"] = customer_id
    return values


class ContactPoints(Resource):
    spec = CONTACT_POINT
    read = ContactPointRead
    create = ContactPointIn
    update = ContactPointUpdate
    parent = "customer"
    tag = "contact points"

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        assert parent_id is not None
        return contact_values(body, parent_id, [])

    def prepare_update(self, recs: Records, record_id: int, body: Any) -> dict[str, Any]:
        values = body.changes()
        if "value" in values:
            kind = recs.session.execute(
                select(CONTACT_POINT.table.c.kind).where(CONTACT_POINT.table.c.id == record_id)
            ).scalar_one()
            if values["value"] is None:
                raise invalid_field("value", "must not be null", "null")
            values["value"], values["value_normalized"] = normalise(kind, values["value"], ["value"])
            values["value_bidx"] = blind_index(kind, values["value_normalized"])
        return values  # type: ignore[no-any-return]

    def after_write(self, recs: Records, row: Row, body: Any) -> None:
        if getattr(body, "is_primary", None):
            demote_other_primaries(recs, row["id"])


def demote_other_primaries(recs: Records, contact_id: int) -> None:
    """At most one primary contact point per customer and kind."""
    t = CONTACT_POINT.table
    me = recs.session.execute(select(t.c.customer_id, t.c.kind).where(t.c.id == contact_id)).one()
    recs.session.execute(
        update(t)
        .where(
            t.c.customer_id == me.customer_id,
            t.c.kind == me.kind,
            t.c.id != contact_id,
            t.c.is_primary.is_(True),
        )
        .values(is_primary=False, version=t.c.version + 1)
    )


contact_points = ContactPoints()
