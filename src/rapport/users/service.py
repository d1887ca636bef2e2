"""Users and teams: creation with the password policy, disabling with immediate revocation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.auth.service import check_password_policy, revoke_user
from rapport.errors import Conflict, InvalidInput, NotFound
from rapport.models import Team, User
from rapport.security.passwords import hash_password


def ensure_team(session: Session, name: str, description: str | None = None) -> Team:
    team = session.execute(select(Team).where(Team.name == name)).scalar_one_or_none()
    if team is None:
        team = Team(name=name, description=description)
        session.add(team)
        session.flush()
    return team


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    team_id: int | None = None,
    email: str | None = None,
    preferred_language: str = "zh-CN",
) -> User:
    try:
        Role(role)
    except ValueError:
        raise InvalidInput(f"role: must be one of {', '.join(r.value for r in Role)}") from None
    check_password_policy(password, username)
    if session.execute(select(User.id).where(User.username == username)).first():
        raise Conflict(f"username '{username}' is taken")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        team_id=team_id,
        email=email,
        preferred_language=preferred_language,
    )
    session.add(user)
    session.flush()
    return user


def set_active(session: Session, username: str, active: bool) -> User:
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"user '{username}' not found")
    user.is_active = active
    user.version += 1
    if not active:
        revoke_user(session, user.id)
    session.flush()
    return user
