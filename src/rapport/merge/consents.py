"""Consent and processing restriction across a merge, without ever rewriting the ledger.

``consent_event`` is append-only (database triggers refuse UPDATE and DELETE), so a merge never
moves ledger rows: each merged record keeps its own history. Instead, for every (purpose,
partner) that a merged customer has a current decision for, the merge **appends** one event for
the survivor, ``source="merge"``, whose evidence names the merge and the event it reproduces,
and makes it the survivor's current state. The rule:

- **most restrictive wins**: when the survivor and a merged customer (or two merged customers)
  decided the same purpose differently, the result is *withdrawn*; only when every decision is a
  grant is the result a grant;
- a purpose only a merged customer decided is carried over as it stands (same person, same
  decision), with the new event pointing at the original one;
- purposes where the survivor's state already equals the result get no event.

Undo appends again (``source="merge_undo"``): the survivor's earlier decision is reproduced, and
where the survivor had none, a withdrawal is recorded (no consent is what "no decision" means
for every consent-based purpose, and a withdrawal keeps ledger and state consistent; deleting the
state row would let a rebuild from the ledger resurrect the merged grant).

Processing restriction: the survivor is restricted when any involved customer is. Undo puts the
survivor's earlier restriction row back (or removes the one the merge created).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from rapport.access.principal import Principal
from rapport.merge.images import decode_row, encode_row
from rapport.models import ConsentEvent, ConsentState, ProcessingRestriction
from rapport.models.base import table_of, utcnow
from rapport.privacy.consent import _upsert_state

EVENTS = table_of(ConsentEvent)
STATE = table_of(ConsentState)
RESTRICTION = table_of(ProcessingRestriction)


def _append(
    session: Session,
    actor: Principal,
    customer_id: int,
    purpose: str,
    partner_key: int,
    granted: bool,
    source: str,
    evidence: str,
) -> int:
    now = utcnow()
    event_id = session.execute(
        insert(EVENTS)
        .values(
            customer_id=customer_id,
            purpose=purpose,
            partner_id=partner_key or None,
            granted=granted,
            source=source,
            evidence=evidence,
            at=now,
            actor_id=actor.user_id,
            actor_kind=actor.kind,
            request_id=actor.request_id,
        )
        .returning(EVENTS.c.id)
    ).scalar_one()
    _upsert_state(
        session,
        {
            "customer_id": customer_id,
            "purpose": purpose,
            "partner_key": partner_key,
            "granted": granted,
            "event_id": event_id,
            "at": now,
        },
    )
    return int(event_id)


def merge_consents(
    session: Session, actor: Principal, merge_id: int, survivor_id: int, merged_ids: list[int]
) -> list[dict[str, Any]]:
    """Append the survivor's new decisions; returns what undo needs (no free text)."""
    rows = [
        dict(r)
        for r in session.execute(
            select(STATE)
            .where(STATE.c.customer_id.in_([survivor_id, *merged_ids]))
            .order_by(STATE.c.purpose, STATE.c.partner_key, STATE.c.customer_id)
        ).mappings()
    ]
    by_key: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((r["purpose"], r["partner_key"]), {})[r["customer_id"]] = r
    changes: list[dict[str, Any]] = []
    for (purpose, partner_key), states in sorted(by_key.items()):
        others = [states[m] for m in merged_ids if m in states]
        if not others:
            continue
        mine = states.get(survivor_id)
        decisions = [*([mine] if mine else []), *others]
        result = all(d["granted"] for d in decisions)
        if mine is not None and mine["granted"] == result:
            continue
        decisive = next(d for d in others if d["granted"] == result)
        evidence = (
            f"merge {merge_id}: {'grant' if result else 'withdrawal'} of customer "
            f"{decisive['customer_id']} (event {decisive['event_id']})"
            + ("; most restrictive decision wins" if len({d["granted"] for d in decisions}) > 1 else "")
        )
        event_id = _append(session, actor, survivor_id, purpose, partner_key, result, "merge", evidence)
        changes.append(
            {
                "purpose": purpose,
                "partner_key": partner_key,
                "granted": result,
                "event_id": event_id,
                "from_event": decisive["event_id"],
                "before": None if mine is None else encode_row(mine),
            }
        )
    return changes


def consent_conflicts(session: Session, survivor_id: int, changes: list[dict[str, Any]]) -> list[str]:
    found = []
    for ch in changes:
        current = session.execute(
            select(STATE.c.event_id).where(
                STATE.c.customer_id == survivor_id,
                STATE.c.purpose == ch["purpose"],
                STATE.c.partner_key == ch["partner_key"],
            )
        ).scalar()
        if current != ch["event_id"]:
            found.append(f"consent:{ch['purpose']}:{ch['partner_key']}")
    return found


def undo_consents(
    session: Session, actor: Principal, merge_id: int, survivor_id: int, changes: list[dict[str, Any]]
) -> list[int]:
    appended = []
    for ch in changes:
        before = ch["before"]
        if before is not None:
            granted = bool(before["granted"])
            evidence = f"undo of merge {merge_id}: restores the survivor's event {before['event_id']}"
        else:
            granted = False
            evidence = f"undo of merge {merge_id}: the survivor had no decision before the merge"
        appended.append(
            _append(
                session, actor, survivor_id, ch["purpose"], ch["partner_key"], granted, "merge_undo", evidence
            )
        )
    return appended


def merge_restriction(session: Session, survivor_id: int, merged_ids: list[int]) -> dict[str, Any] | None:
    """Restricted wins. Returns {"before": row|None, "after": row} when the survivor changed."""
    rows = {
        r["customer_id"]: dict(r)
        for r in session.execute(
            select(RESTRICTION).where(RESTRICTION.c.customer_id.in_([survivor_id, *merged_ids]))
        ).mappings()
    }
    mine = rows.get(survivor_id)
    if mine is not None and mine["restricted"]:
        return None
    source = next((rows[m] for m in merged_ids if m in rows and rows[m]["restricted"]), None)
    if source is None:
        return None
    after = {
        "customer_id": survivor_id,
        "restricted": True,
        "reason": f"carried over by a merge from customer {source['customer_id']}",
        "changed_at": utcnow(),
        "changed_by": source["changed_by"],
    }
    if mine is None:
        session.execute(insert(RESTRICTION).values(**after))
    else:
        session.execute(update(RESTRICTION).where(RESTRICTION.c.customer_id == survivor_id).values(**after))
    return {"before": None if mine is None else encode_row(mine), "after": encode_row(after)}


def restriction_conflicts(session: Session, survivor_id: int, change: dict[str, Any] | None) -> list[str]:
    if change is None:
        return []
    current = (
        session.execute(select(RESTRICTION).where(RESTRICTION.c.customer_id == survivor_id))
        .mappings()
        .first()
    )
    expected = decode_row(RESTRICTION, change["after"])
    if current is None or any(current[k] != v for k, v in expected.items()):
        return ["processing_restriction"]
    return []


def undo_restriction(session: Session, survivor_id: int, change: dict[str, Any] | None) -> None:
    if change is None:
        return
    if change["before"] is None:
        session.execute(delete(RESTRICTION).where(RESTRICTION.c.customer_id == survivor_id))
    else:
        before = decode_row(RESTRICTION, change["before"])
        session.execute(update(RESTRICTION).where(RESTRICTION.c.customer_id == survivor_id).values(**before))
