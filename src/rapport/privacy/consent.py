"""Consent per purpose (PIPL art. 14-16, 29, 39; GDPR art. 6-7) and restriction of processing.

The ledger (``consent_event``) is append-only at the database level; ``consent_state`` holds the
current decision per (customer, purpose, partner) so :func:`may_use` is one primary-key probe.
Each call records exactly one purpose: there is no way to record a bundle, so the purposes PIPL
wants consented to separately (sensitive processing, provision to a third party, transfer abroad)
always are. Third-party and cross-border consent name the partner they are given to.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, exists, false, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from rapport.access.principal import Principal
from rapport.audit.chain import PendingEvent
from rapport.db import record_audit
from rapport.errors import invalid_field
from rapport.models.base import table_of, utcnow
from rapport.models.privacy import ConsentEvent, ConsentState, ProcessingRestriction, SharingPartner


class Purpose(StrEnum):
    marketing_email = "marketing_email"
    marketing_sms = "marketing_sms"
    marketing_wechat = "marketing_wechat"
    marketing_phone = "marketing_phone"
    profiling = "profiling"
    third_party_sharing = "third_party_sharing"
    cross_border_transfer = "cross_border_transfer"
    sensitive_processing = "sensitive_processing"


# Consent to these is given to one named recipient (PIPL art. 23 and 39), never to "partners".
PARTNER_PURPOSES = frozenset({Purpose.third_party_sharing, Purpose.cross_border_transfer})
# Purposes for which PIPL requires separate consent (art. 23, 29, 39).
SEPARATE_CONSENT = frozenset(
    {Purpose.sensitive_processing, Purpose.third_party_sharing, Purpose.cross_border_transfer}
)

EVENTS = table_of(ConsentEvent)
STATE = table_of(ConsentState)
RESTRICTION = table_of(ProcessingRestriction)


# One round trip, core statement built once: the current decision and the restriction flag.
_CURRENT = select(
    select(STATE.c.granted)
    .where(
        STATE.c.customer_id == bindparam("cid"),
        STATE.c.purpose == bindparam("purpose"),
        STATE.c.partner_key == bindparam("key"),
    )
    .scalar_subquery(),
    select(RESTRICTION.c.restricted).where(RESTRICTION.c.customer_id == bindparam("cid")).scalar_subquery(),
)


def _purpose(purpose: Any) -> Purpose:
    """Exactly one known purpose; a list, a comma-joined string or an unknown word is refused."""
    if isinstance(purpose, Purpose):
        return purpose
    if isinstance(purpose, str):
        try:
            return Purpose(purpose)
        except ValueError:
            pass
    raise invalid_field("purpose", "must be exactly one purpose; record each purpose separately", "purpose")


def _partner_key(session: Session, purpose: Purpose, partner_id: int | None, *, check: bool) -> int:
    if purpose in PARTNER_PURPOSES:
        if partner_id is None:
            raise invalid_field("partner_id", f"{purpose.value} consent names the partner it is given to")
        if check and session.get(SharingPartner, partner_id) is None:
            raise invalid_field("partner_id", f"no sharing partner {partner_id}", "reference")
        return partner_id
    if partner_id is not None:
        raise invalid_field("partner_id", f"{purpose.value} consent is not given to a partner")
    return 0


def not_restricted(customer_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """SQL condition: the customer has not restricted processing (for exports and bulk jobs)."""
    return ~exists(
        select(RESTRICTION.c.customer_id).where(
            RESTRICTION.c.customer_id == customer_id, RESTRICTION.c.restricted.is_(True)
        )
    )


def is_restricted(session: Session, customer_id: int) -> bool:
    row = session.execute(
        select(RESTRICTION.c.restricted).where(RESTRICTION.c.customer_id == customer_id)
    ).scalar_one_or_none()
    return bool(row)


def may_use(
    session: Session,
    customer_id: int,
    purpose: Purpose,
    *,
    at: dt.datetime | None = None,
    partner_id: int | None = None,
) -> bool:
    """Whether the customer's data may be used for ``purpose`` (with ``partner_id``) now or ``at``.

    False without a recorded grant, after a withdrawal, and for every purpose while processing is
    restricted. With ``at`` the ledger is read as it stood then (restriction: as it stands now).
    """
    purpose = _purpose(purpose)
    if purpose in PARTNER_PURPOSES and partner_id is None:
        return False
    key = partner_id if purpose in PARTNER_PURPOSES and partner_id is not None else 0
    if purpose not in PARTNER_PURPOSES and partner_id is not None:
        return False
    conn = session.connection()
    if at is None:
        granted, restricted = conn.execute(
            _CURRENT, {"cid": customer_id, "purpose": purpose.value, "key": key}
        ).one()
        return bool(granted) and not restricted
    if is_restricted(session, customer_id):
        return False
    e = EVENTS
    partner_match = e.c.partner_id.is_(None) if key == 0 else e.c.partner_id == key
    granted = conn.execute(
        select(e.c.granted)
        .where(e.c.customer_id == customer_id, e.c.purpose == purpose.value, partner_match, e.c.at <= at)
        .order_by(e.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return bool(granted)


def allowed_customer_ids(
    session: Session, purpose: Purpose, *, at: dt.datetime | None = None, partner_id: int | None = None
) -> Select[Any]:
    """SELECT of the ids of customers whose data may be used for ``purpose`` (bulk :func:`may_use`)."""
    purpose = _purpose(purpose)
    key = partner_id if purpose in PARTNER_PURPOSES and partner_id is not None else 0
    not_restricted = ~exists(
        select(RESTRICTION.c.customer_id).where(
            RESTRICTION.c.restricted.is_(True),
            RESTRICTION.c.customer_id == (STATE.c.customer_id if at is None else EVENTS.c.customer_id),
        )
    )
    if purpose in PARTNER_PURPOSES and partner_id is None:
        return select(STATE.c.customer_id).where(false())
    if at is None:
        return select(STATE.c.customer_id).where(
            STATE.c.purpose == purpose.value,
            STATE.c.partner_key == key,
            STATE.c.granted.is_(True),
            not_restricted,
        )
    e = EVENTS
    partner_match = e.c.partner_id.is_(None) if key == 0 else e.c.partner_id == key
    latest = (
        select(func.max(e.c.id))
        .where(e.c.purpose == purpose.value, partner_match, e.c.at <= at)
        .group_by(e.c.customer_id)
        .scalar_subquery()
    )
    return select(e.c.customer_id).where(e.c.id.in_(latest), e.c.granted.is_(True), not_restricted)


def _upsert_state(session: Session, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    ins: Any = pg_insert(STATE) if dialect == "postgresql" else sqlite_insert(STATE)
    stmt = ins.values(**values).on_conflict_do_update(
        index_elements=[STATE.c.customer_id, STATE.c.purpose, STATE.c.partner_key],
        set_={"granted": values["granted"], "event_id": values["event_id"], "at": values["at"]},
    )
    session.execute(stmt)


def _audit(
    session: Session, actor: Principal, action: str, customer_id: int, details: dict[str, Any]
) -> None:
    record_audit(
        session,
        PendingEvent(
            action=action,
            resource="consent",
            record_id=str(customer_id),
            fields=[],
            actor_id=actor.user_id,
            actor_kind=actor.kind,
            ip=actor.ip,
            request_id=actor.request_id,
            details=details,
        ),
    )


def record_consent(
    session: Session,
    customer_id: int,
    purpose: Purpose,
    *,
    granted: bool,
    source: str,
    evidence: str | None,
    actor: Principal,
    partner_id: int | None = None,
) -> ConsentEvent:
    """Append one grant or withdrawal of one purpose and make it the current state, in this unit."""
    purpose = _purpose(purpose)
    key = _partner_key(session, purpose, partner_id, check=True)
    now = utcnow()
    event = ConsentEvent(
        customer_id=customer_id,
        purpose=purpose.value,
        partner_id=key or None,
        granted=granted,
        source=source,
        evidence=evidence,
        at=now,
        actor_id=actor.user_id,
        actor_kind=actor.kind,
        request_id=actor.request_id,
    )
    session.add(event)
    session.flush()
    _upsert_state(
        session,
        {
            "customer_id": customer_id,
            "purpose": purpose.value,
            "partner_key": key,
            "granted": granted,
            "event_id": event.id,
            "at": now,
        },
    )
    _audit(
        session,
        actor,
        "consent_grant" if granted else "consent_withdraw",
        customer_id,
        {"purpose": purpose.value, "partner_id": key or None, "event_id": event.id, "source": source},
    )
    return event


def withdraw(
    session: Session,
    customer_id: int,
    purpose: Purpose,
    *,
    source: str,
    evidence: str | None,
    actor: Principal,
    partner_id: int | None = None,
) -> ConsentEvent:
    """Withdrawal takes effect at once: :func:`may_use` answers False in this very transaction."""
    return record_consent(
        session,
        customer_id,
        purpose,
        granted=False,
        source=source,
        evidence=evidence,
        actor=actor,
        partner_id=partner_id,
    )


def set_restriction(
    session: Session, customer_id: int, *, restricted: bool, reason: str, actor: Principal
) -> None:
    now = utcnow()
    values = {"restricted": restricted, "reason": reason, "changed_at": now, "changed_by": actor.user_id}
    done = session.execute(
        update(RESTRICTION).where(RESTRICTION.c.customer_id == customer_id).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        session.execute(RESTRICTION.insert().values(customer_id=customer_id, **values))
    _audit(
        session, actor, "restrict" if restricted else "unrestrict", customer_id, {"restricted": restricted}
    )


def restriction_of(session: Session, customer_id: int) -> dict[str, Any] | None:
    row = (
        session.execute(select(RESTRICTION).where(RESTRICTION.c.customer_id == customer_id))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def current(session: Session, customer_id: int) -> list[dict[str, Any]]:
    s = STATE
    rows = session.execute(
        select(s.c.purpose, s.c.partner_key, s.c.granted, s.c.at, s.c.event_id)
        .where(s.c.customer_id == customer_id)
        .order_by(s.c.purpose, s.c.partner_key)
    ).mappings()
    return [
        {
            "purpose": r["purpose"],
            "partner_id": r["partner_key"] or None,
            "granted": r["granted"],
            "at": r["at"],
            "event_id": r["event_id"],
        }
        for r in rows
    ]


def history(session: Session, customer_id: int, *, limit: int = 500) -> list[dict[str, Any]]:
    e = EVENTS
    rows = session.execute(
        select(e).where(e.c.customer_id == customer_id).order_by(e.c.id.desc()).limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def summary(session: Session, customer_id: int, hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Current state and restriction, as shown on the customer 360 and the privacy portal."""
    restriction = restriction_of(session, customer_id)
    restricted = bool(restriction and restriction["restricted"])
    out: dict[str, Any] = {"restricted": restricted, "current": current(session, customer_id)}
    if restricted and restriction is not None and "reason" not in hidden:
        out["restriction_reason"] = restriction["reason"]
    return out


__all__ = [
    "PARTNER_PURPOSES",
    "SEPARATE_CONSENT",
    "Purpose",
    "allowed_customer_ids",
    "current",
    "history",
    "is_restricted",
    "may_use",
    "record_consent",
    "set_restriction",
    "summary",
    "withdraw",
]
