"""Small look-ups pages share: staff names, teams, choices. All through the data-access layer."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from rapport.access.policy import Action
from rapport.access.records import Records
from rapport.access.specs import TEAM, USER


def user_names(recs: Records, ids: Iterable[int | None]) -> dict[int, str]:
    """Display names of the staff the caller may see (others show as their id)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted or not recs.principal.can(USER.name, Action.read):
        return {}
    hidden = recs.principal.grant(USER.name).hidden
    t = USER.table
    cols = [t.c.id] + [t.c[c] for c in ("display_name", "username") if c not in hidden]
    if len(cols) == 1:
        return {}
    stmt = select(*cols).where(t.c.id.in_(wanted), recs.visible(USER))
    out = {}
    for row in recs.conn.execute(stmt).mappings():
        out[row["id"]] = row.get("display_name") or row.get("username") or f"#{row['id']}"
    return out


def user_options(recs: Records) -> list[tuple[int, str]]:
    """Active staff the caller may see, for owner/assignee choices."""
    if not recs.principal.can(USER.name, Action.read):
        return []
    hidden = recs.principal.grant(USER.name).hidden
    t = USER.table
    cols = [t.c.id] + [t.c[c] for c in ("display_name", "username") if c not in hidden]
    stmt = select(*cols).where(recs.visible(USER), t.c.is_active.is_(True)).order_by(t.c.username).limit(500)
    return [
        (r["id"], r.get("display_name") or r.get("username") or f"#{r['id']}")
        for r in recs.conn.execute(stmt).mappings()
    ]


def team_options(recs: Records) -> list[tuple[int, str]]:
    if not recs.principal.can(TEAM.name, Action.read):
        return []
    t = TEAM.table
    stmt = select(t.c.id, t.c.name).where(recs.visible(TEAM)).order_by(t.c.name)
    return [(r.id, r.name) for r in recs.conn.execute(stmt)]
