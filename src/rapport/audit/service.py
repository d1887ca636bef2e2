"""Who may read the audit trail, over whose actions, and verification of the hash chain."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, select

from rapport.access.policy import Action, Grant, Scope
from rapport.access.records import Records
from rapport.access.specs import USER
from rapport.audit import repository as repo
from rapport.audit.chain import verify_chain
from rapport.audit.schemas import AuditFilters
from rapport.crud import equal_filters, time_window
from rapport.errors import Forbidden
from rapport.pagination import Sort

RESOURCE = "audit"
_BY_SEQ = Sort("seq", descending=True)


def _grant(recs: Records, action: str, *, everything: bool = False) -> Grant:
    grant = recs.principal.grant(RESOURCE)
    if not grant.allows(Action.read) or (everything and grant.scope is not Scope.all):
        recs.audit(action, RESOURCE, None, outcome="denied")
        raise Forbidden("your role may not read the audit trail" + (" in full" if everything else ""))
    return grant


def _actor_scope(recs: Records, grant: Grant) -> list[ColumnElement[bool]]:
    """A team lead sees what their team did (their own actions included), nobody else's."""
    t, p = repo.EVENTS, recs.principal
    if grant.scope is Scope.all:
        return []
    if grant.scope is Scope.own or p.team_id is None:
        return [t.c.actor_id == p.user_id]
    u = USER.table
    return [t.c.actor_id.in_(select(u.c.id).where(u.c.team_id == p.team_id))]


def events(recs: Records, f: AuditFilters) -> dict[str, Any]:
    grant = _grant(recs, "list")
    t = repo.EVENTS
    where = [
        *_actor_scope(recs, grant),
        *equal_filters(t, f, "actor_id", "resource", "record_id", "action", "outcome"),
        *time_window(t.c.at, f.at_from, f.at_to, "at_from", "at_to"),
    ]
    before = recs.cursors.decode(f.cursor, _BY_SEQ, t)[1] if f.cursor else None
    rows = repo.newest_first(recs.conn, where, before, f.limit + 1)
    next_cursor = None
    if len(rows) > f.limit:
        rows = rows[: f.limit]
        last = rows[-1]["seq"]
        next_cursor = recs.cursors.encode(_BY_SEQ, last, last)
    # Reading the trail is itself recorded, under its own resource: these are events, not the
    # customers or orders they mention.
    recs.audit("list", RESOURCE, None, details={"count": len(rows)})
    return {"items": rows, "next_cursor": next_cursor, "limit": f.limit}


def verify(recs: Records) -> dict[str, Any]:
    _grant(recs, "verify", everything=True)
    result = asdict(verify_chain(recs.session))
    recs.audit("verify", RESOURCE, None, details={"ok": result["ok"], "checked": result["checked"]})
    return result
