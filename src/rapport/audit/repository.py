"""Reading the audit chain newest first. Events are not business records (no id, no version),
so this query is written directly; the service decides who may run it and over which actors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, select

from rapport.models.base import table_of
from rapport.models.system import AuditEvent

EVENTS = table_of(AuditEvent)


def newest_first(
    conn: Connection, where: Sequence[ColumnElement[bool]], before_seq: int | None, limit: int
) -> list[dict[str, Any]]:
    t = EVENTS
    stmt = select(t).where(*where)
    if before_seq is not None:
        stmt = stmt.where(t.c.seq < before_seq)
    stmt = stmt.order_by(t.c.seq.desc()).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]
