"""The tamper-evident audit chain: each event carries the hash of the one before it.

Only ids, actions and field *names* are recorded, never values, so the chain itself holds no
personal data beyond pseudonymous ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from rapport.models.base import table_of, utcnow
from rapport.models.system import AuditEvent

GENESIS = "0" * 64
# Arbitrary constant identifying the audit chain's advisory lock on PostgreSQL.
_PG_CHAIN_LOCK = 7_316_452_019


_LAST_EVENT = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
_INSERT_EVENT = insert(table_of(AuditEvent))


@dataclass(slots=True)
class PendingEvent:
    action: str
    resource: str
    record_id: str | None = None
    fields: list[str] = field(default_factory=list)
    outcome: str = "ok"
    actor_id: int | None = None
    actor_kind: str = "system"
    ip: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=utcnow)


def _canonical(seq: int, row: dict[str, Any]) -> bytes:
    body = {
        "seq": seq,
        "at": row["at"].astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_id": row["actor_id"],
        "actor_kind": row["actor_kind"],
        "action": row["action"],
        "resource": row["resource"],
        "record_id": row["record_id"],
        "fields": list(row["fields"] or []),
        "outcome": row["outcome"],
        "ip": row["ip"],
        "request_id": row["request_id"],
        "details": row["details"] or {},
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def event_hash(prev_hash: str, seq: int, row: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + _canonical(seq, row)).hexdigest()


def append_events(session: Session, events: Iterable[PendingEvent]) -> None:
    pending = list(events)
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Serialise appenders across processes; released at commit.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_CHAIN_LOCK})
    conn = session.connection()
    last = conn.execute(_LAST_EVENT).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    rows = []
    for ev in pending:
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "at": ev.at,
            "actor_id": ev.actor_id,
            "actor_kind": ev.actor_kind,
            "action": ev.action,
            "resource": ev.resource,
            "record_id": ev.record_id,
            "fields": sorted(ev.fields),
            "outcome": ev.outcome,
            "ip": ev.ip,
            "request_id": ev.request_id,
            "details": ev.details,
            "prev_hash": prev,
        }
        row["hash"] = prev = event_hash(prev, seq, row)
        rows.append(row)
    conn.execute(_INSERT_EVENT, rows)


@dataclass(slots=True)
class VerifyResult:
    ok: bool
    checked: int
    last_seq: int
    last_hash: str
    bad_seq: int | None = None
    reason: str | None = None


def verify_chain(
    session: Session, checkpoint: dict[str, Any] | None = None, batch: int = 5000
) -> VerifyResult:
    """Recompute the chain from the start; report the first position that does not hold."""
    table = AuditEvent.__table__
    expected_seq, prev, checked = 1, GENESIS, 0
    last_seq = 0
    stmt = select(table).order_by(table.c.seq).execution_options(yield_per=batch)
    for row in session.execute(stmt).mappings():
        data = dict(row)
        if data["seq"] != expected_seq:
            reason = "missing event(s)" if data["seq"] > expected_seq else "sequence out of order"
            return VerifyResult(False, checked, last_seq, prev, expected_seq, reason)
        if data["prev_hash"] != prev:
            return VerifyResult(False, checked, last_seq, prev, data["seq"], "link to previous event broken")
        if event_hash(prev, data["seq"], data) != data["hash"]:
            return VerifyResult(False, checked, last_seq, prev, data["seq"], "event content altered")
        prev = data["hash"]
        last_seq = data["seq"]
        expected_seq += 1
        checked += 1
        if checkpoint and last_seq == checkpoint["seq"] and prev != checkpoint["hash"]:
            return VerifyResult(False, checked, last_seq, prev, last_seq, "differs from checkpoint")
    if checkpoint and last_seq < int(checkpoint["seq"]):
        return VerifyResult(False, checked, last_seq, prev, last_seq + 1, "chain truncated before checkpoint")
    return VerifyResult(True, checked, last_seq, prev)
