"""Administration: users and teams, what each role may do, and the audit trail with its chain status.

Thin on purpose: user and team writes go through :mod:`rapport.users.service` (password policy,
"keep an administrator", token revocation on disable), the audit listing through
:mod:`rapport.audit.service` (actor scope, keyset cursor, the read itself audited) and the role
matrix is read straight from :data:`rapport.access.policy.POLICY`, so the pages can never drift
from what the data-access layer enforces.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select

from rapport.access.policy import POLICY, RESOURCES, Action, Role, Scope
from rapport.access.principal import Principal
from rapport.access.records import Page, Records, Row
from rapport.access.specs import TEAM, USER
from rapport.audit import service as audit_service
from rapport.audit.schemas import AuditFilters
from rapport.errors import Forbidden, InvalidInput
from rapport.models.base import utcnow
from rapport.users.schemas import TeamCreate, UserCreate, UserFilters, UserUpdate
from rapport.users.service import teams, users

M = TypeVar("M", bound=BaseModel)

# Everything the administration pages do, as (resource, action) pairs with an "all" scope.
_ADMIN_NEEDS = (
    ("user", Action.create),
    ("user", Action.update),
    ("team", Action.create),
    ("audit", Action.read),
)


def can_administer(principal: Principal) -> bool:
    """Derived from the policy, not the role name: whoever may manage every user and team and
    read the whole audit trail (today: administrators)."""
    for resource, action in _ADMIN_NEEDS:
        grant = principal.grant(resource)
        if not grant.allows(action) or grant.scope is not Scope.all:
            return False
    return True


def require_admin(recs: Records) -> None:
    if not can_administer(recs.principal):
        recs.audit("access", "administration", None, outcome="denied")
        raise Forbidden("administration is for administrators")


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """Validate form data with the API's own schema; errors come back as the API reports them
    (``field``, ``type``, ``message``), for the page to show next to each field."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        errors = [
            {
                "loc": ["body", *err["loc"]],
                "field": ".".join(str(p) for p in err["loc"]),
                "message": err["msg"],
                "type": err["type"],
                "ctx": {k: str(v) for k, v in (err.get("ctx") or {}).items()},
            }
            for err in exc.errors()
        ]
        first = errors[0]
        raise InvalidInput(f"{first['field']}: {first['message']}", errors=errors) from None


# -- roles: what each one can see -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One role's rights on one resource; ``actions`` empty means no access at all."""

    actions: tuple[str, ...]
    scope: str | None
    hidden: tuple[str, ...]
    masked: tuple[tuple[str, str], ...]


def role_matrix() -> dict[str, dict[str, Cell]]:
    """resource -> role -> rights, in policy order (resources) and role enum order."""
    out: dict[str, dict[str, Cell]] = {}
    for resource in RESOURCES:
        row: dict[str, Cell] = {}
        for role in Role:
            grant = POLICY[role].get(resource)
            if grant is None or not grant.actions:
                row[role.value] = Cell((), None, (), ())
                continue
            row[role.value] = Cell(
                actions=tuple(a.value for a in Action if a in grant.actions),
                scope=grant.scope.value,
                hidden=tuple(sorted(grant.hidden)),
                masked=tuple(sorted((col, mask.value) for col, mask in grant.masked)),
            )
        out[resource] = row
    return out


# -- users and teams --------------------------------------------------------------------------


def team_names(recs: Records) -> dict[int, str]:
    t = TEAM.table
    return {int(r[0]): r[1] for r in recs.conn.execute(select(t.c.id, t.c.name).order_by(t.c.name))}


def list_users(recs: Records, params: Mapping[str, Any], *, cursor: str | None, limit: int = 50) -> Page:
    require_admin(recs)
    f = parse(UserFilters, {k: v for k, v in params.items() if v not in (None, "")})
    return recs.page(
        USER,
        sort="username",
        cursor=cursor,
        limit=limit,
        where=list(users.where(recs, f)),
    )


def list_teams(recs: Records) -> list[dict[str, Any]]:
    """Every team with its number of active and disabled members."""
    require_admin(recs)
    t, u = TEAM.table, USER.table
    active = func.count(u.c.id).filter(u.c.is_active.is_(True))
    disabled = func.count(u.c.id).filter(u.c.is_active.is_(False))
    stmt = (
        select(
            t.c.id, t.c.name, t.c.description, t.c.version, active.label("active"), disabled.label("disabled")
        )
        .select_from(t.outerjoin(u, u.c.team_id == t.c.id))
        .where(recs.visible(TEAM))
        .group_by(t.c.id, t.c.name, t.c.description, t.c.version)
        .order_by(t.c.name)
    )
    return [dict(r) for r in recs.conn.execute(stmt).mappings()]


def get_user(recs: Records, user_id: int) -> Row:
    require_admin(recs)
    return users.get(recs, user_id)


def create_user(recs: Records, data: Mapping[str, Any]) -> Row:
    require_admin(recs)
    body = parse(UserCreate, {k: v for k, v in data.items() if v not in (None, "")})
    return users.do_create(recs, body)


def update_user(recs: Records, user_id: int, data: Mapping[str, Any], version: int) -> Row:
    """Change role, team, name, email or language. An empty team means "no team"."""
    require_admin(recs)
    body = parse(UserUpdate, {k: (None if v == "" else v) for k, v in data.items()})
    return users.do_update(recs, user_id, body, version)


def set_active(recs: Records, user_id: int, active: bool) -> Row:
    require_admin(recs)
    return users.set_active(recs, user_id, active)


def create_team(recs: Records, data: Mapping[str, Any]) -> Row:
    require_admin(recs)
    body = parse(TeamCreate, {k: v for k, v in data.items() if v not in (None, "")})
    return teams.do_create(recs, body)


# -- audit trail ------------------------------------------------------------------------------


def audit_events(recs: Records, params: Mapping[str, Any]) -> dict[str, Any]:
    """Filtered, newest-first, keyset-paginated events, each with its actor's username.

    ``actor`` may be a username (the page's filter box) instead of ``actor_id``; an unknown
    username is a field error, not an empty list, so a typo does not look like a clean trail.
    """
    require_admin(recs)
    data = {k: v for k, v in params.items() if v not in (None, "")}
    actor = data.pop("actor", None)
    if actor is not None:
        u = USER.table
        found = recs.conn.execute(select(u.c.id).where(u.c.username == str(actor).strip().lower())).scalar()
        if found is None:
            raise InvalidInput(
                f"actor: no user named {actor!r}",
                errors=[
                    {
                        "loc": ["query", "actor"],
                        "field": "actor",
                        "message": "unknown user",
                        "type": "unknown_user",
                    }
                ],
            )
        data["actor_id"] = found
    f = parse(AuditFilters, data)
    page = audit_service.events(recs, f)
    ids = {r["actor_id"] for r in page["items"] if r["actor_id"] is not None}
    u = USER.table
    names = (
        {int(r[0]): r[1] for r in recs.conn.execute(select(u.c.id, u.c.username).where(u.c.id.in_(ids)))}
        if ids
        else {}
    )
    for row in page["items"]:
        row["actor"] = names.get(row["actor_id"])
    return page


@dataclass(frozen=True, slots=True)
class ChainStatus:
    ok: bool
    checked: int
    last_seq: int
    bad_seq: int | None
    reason: str | None
    verified_at: dt.datetime


class ChainStatusCache:
    """The last verification's outcome. Verifying recomputes every hash in the trail (seconds on
    millions of events), so pages show the last result and verify again only on request."""

    def __init__(self) -> None:
        self._last: ChainStatus | None = None
        self._lock = threading.Lock()

    @property
    def last(self) -> ChainStatus | None:
        return self._last

    def set(self, status: ChainStatus) -> None:
        with self._lock:
            self._last = status


def verify_chain(recs: Records, cache: ChainStatusCache | None = None) -> ChainStatus:
    """Recompute the chain now (the audit service checks the role and records the verification)."""
    require_admin(recs)
    result = audit_service.verify(recs)
    status = ChainStatus(
        ok=bool(result["ok"]),
        checked=int(result["checked"]),
        last_seq=int(result["last_seq"]),
        bad_seq=result["bad_seq"],
        reason=result["reason"],
        verified_at=utcnow(),
    )
    if cache is not None:
        cache.set(status)
    return status
