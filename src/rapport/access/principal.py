"""The authenticated caller of a request or job."""

from __future__ import annotations

from dataclasses import dataclass, field

from rapport.access.policy import Action, Grant, Role, grant_for


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int | None
    username: str
    role: Role
    team_id: int | None
    kind: str = "user"  # user | api_key | system
    # API keys narrow the owner's role to "resource:action" scopes; None means the full role.
    scopes: frozenset[str] | None = None
    token_id: int | None = None
    ip: str | None = None
    request_id: str | None = None
    language: str = "zh-CN"
    extra: dict[str, str] = field(default_factory=dict)
    api_key_id: int | None = None  # the API key of an api_key caller (jobs re-check it later)

    def grant(self, resource: str) -> Grant:
        base = grant_for(self.role, resource)
        if self.scopes is None:
            return base
        allowed = frozenset(
            a for a in base.actions if f"{resource}:{a}" in self.scopes or f"*:{a}" in self.scopes
        )
        return Grant(allowed, base.scope, base.hidden, base.masked)

    def can(self, resource: str, action: Action) -> bool:
        return self.grant(resource).allows(action)

    @property
    def is_person(self) -> bool:
        return self.kind == "user"

    @property
    def owner_key(self) -> str:
        return f"{self.kind}:{self.user_id}"


SYSTEM = Principal(user_id=None, username="system", role=Role.admin, team_id=None, kind="system")
