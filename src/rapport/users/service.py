"""Users and teams: creation with the password policy, disabling with immediate revocation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from rapport.access.policy import Action, Role
from rapport.access.records import Records, Row
from rapport.access.specs import CUSTOM_FIELD, CUSTOMER, ORGANISATION, TEAM, USER
from rapport.auth.service import check_password_policy, revoke_user
from rapport.crud import Resource, equal_filters, refuse_nulls, starts_with, unique_error, unique_or_conflict
from rapport.errors import Conflict, InvalidInput, NotFound, invalid_field
from rapport.models import Team, User
from rapport.security.passwords import hash_password
from rapport.users.schemas import (
    CustomFieldCreate,
    CustomFieldFilters,
    CustomFieldRead,
    CustomFieldUpdate,
    TeamCreate,
    TeamRead,
    TeamUpdate,
    UserCreate,
    UserFilters,
    UserRead,
    UserUpdate,
)


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


# -- REST resources: users, teams, custom fields -------------------------------------------------


def _check_team(recs: Records, team_id: int | None) -> None:
    if team_id is None:
        return
    t = TEAM.table
    if recs.conn.execute(select(t.c.id).where(t.c.id == team_id, recs.visible(TEAM))).first() is None:
        raise invalid_field("team_id", f"no team {team_id} that you can see", "reference")


def _other_active_admins(recs: Records, user_id: int) -> int:
    u = USER.table
    return int(
        recs.conn.execute(
            select(func.count())
            .select_from(u)
            .where(u.c.role == Role.admin.value, u.c.is_active.is_(True), u.c.id != user_id)
        ).scalar_one()
    )


def _keep_an_admin(recs: Records, current: Row) -> None:
    """Refuse the change that would leave nobody able to administer the installation."""
    if (
        current["role"] == Role.admin.value
        and current["is_active"]
        and _other_active_admins(recs, current["id"]) == 0
    ):
        raise Conflict("this is the last active administrator; make another user admin first")


class Users(Resource):
    spec = USER
    read = UserRead
    create = UserCreate
    update = UserUpdate
    filters = UserFilters
    # Users are disabled, never deleted: audit events, owners and authors keep pointing at them.
    deletable = False
    default_sort = "username"
    tag = "users"

    def where(self, recs: Records, f: UserFilters) -> Sequence[ColumnElement[bool]]:
        u = USER.table
        # Role is a str enum, so it compares with the stored text as it is.
        clauses = equal_filters(u, f, "role", "team_id", "is_active")
        if f.q:
            recs.require_visible(USER, "username", "search by")
            clauses.append(starts_with(u.c.username, f.q))
        return clauses

    def do_create(self, recs: Records, body: Any, parent_id: int | None = None) -> Row:
        recs.require(USER, Action.create)
        _check_team(recs, body.team_id)
        with unique_or_conflict("username", f"username '{body.username}' is taken"):
            user = create_user(
                recs.session,
                username=body.username,
                password=body.password,
                role=body.role.value,
                display_name=body.display_name,
                team_id=body.team_id,
                email=body.email,
                preferred_language=body.preferred_language,
            )
        recs.audit("create", USER.name, user.id, fields=sorted(body.model_fields_set))
        return self.get_after_write(recs, user.id)

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, "display_name", "role", "preferred_language")
        current = self.locate(recs, record_id, Action.update, version)
        if "team_id" in values:
            _check_team(recs, values["team_id"])
        if "role" in values:
            values["role"] = values["role"].value
            if values["role"] != Role.admin.value:
                _keep_an_admin(recs, current)
        recs.update(USER, record_id, values, version)
        return self.get_after_write(recs, record_id)

    def set_active(self, recs: Records, record_id: int, active: bool) -> Row:
        """Enable or disable; disabling revokes every token and API key of the user at once."""
        current = self.locate(recs, record_id, Action.update)
        if not active:
            if record_id == recs.principal.user_id:
                raise Conflict("you cannot disable your own account")
            _keep_an_admin(recs, current)
        if current["is_active"] != active:
            recs.update(USER, record_id, {"is_active": active}, None)
        if not active:
            revoke_user(recs.session, record_id)
        return self.get_after_write(recs, record_id)


class Teams(Resource):
    spec = TEAM
    read = TeamRead
    create = TeamCreate
    update = TeamUpdate
    default_sort = "name"
    tag = "teams"

    def do_create(self, recs: Records, body: Any, parent_id: int | None = None) -> Row:
        recs.require(TEAM, Action.create)
        _unique_team_name(recs, body.name, None)
        with unique_or_conflict("name", f"a team named '{body.name}' exists"):
            return super().do_create(recs, body, parent_id)

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, "name")
        self.locate(recs, record_id, Action.update, version)
        if "name" in values:
            _unique_team_name(recs, values["name"], record_id)
        with unique_or_conflict("name", f"a team named '{values.get('name')}' exists"):
            recs.update(TEAM, record_id, values, version)
        return self.get_after_write(recs, record_id)

    def do_delete(self, recs: Records, record_id: int, version: int) -> None:
        self.locate(recs, record_id, Action.delete, version)
        using = {
            label: n
            for label, spec in (("users", USER), ("customers", CUSTOMER), ("organisations", ORGANISATION))
            if (
                n := recs.conn.execute(
                    select(func.count()).select_from(spec.table).where(spec.table.c.team_id == record_id)
                ).scalar_one()
            )
        }
        if using:
            listed = ", ".join(f"{n} {label}" for label, n in using.items())
            raise Conflict(f"team {record_id} still has {listed}; move them to another team first")
        recs.delete(TEAM, record_id, version)


def _unique_team_name(recs: Records, name: str, own_id: int | None) -> None:
    t = TEAM.table
    holder = recs.conn.execute(select(t.c.id).where(t.c.name == name)).scalar_one_or_none()
    if holder is not None and holder != own_id:
        raise Conflict(f"a team named '{name}' exists (team {holder})", errors=unique_error("name"))


class CustomFields(Resource):
    spec = CUSTOM_FIELD
    read = CustomFieldRead
    create = CustomFieldCreate
    update = CustomFieldUpdate
    filters = CustomFieldFilters
    default_sort = "id"
    tag = "custom fields"

    def where(self, recs: Records, f: CustomFieldFilters) -> Sequence[ColumnElement[bool]]:
        return [CUSTOM_FIELD.table.c.entity == f.entity] if f.entity is not None else []

    def do_create(self, recs: Records, body: Any, parent_id: int | None = None) -> Row:
        recs.require(CUSTOM_FIELD, Action.create)
        _check_choices(body.field_type, body.choices, creating=True)
        t = CUSTOM_FIELD.table
        taken = recs.conn.execute(
            select(t.c.id).where(t.c.entity == body.entity, t.c.key == body.key)
        ).scalar_one_or_none()
        message = f"{body.entity} already has a custom field '{body.key}'"
        if taken is not None:
            raise Conflict(f"{message} (custom field {taken})", errors=unique_error("key"))
        with unique_or_conflict("key", message):
            return super().do_create(recs, body, parent_id)

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        values: dict[str, Any] = body.model_dump()
        values["choices"] = values["choices"] or []
        return values

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, "label", "required")
        current = self.locate(recs, record_id, Action.update, version)
        if "choices" in values:
            _check_choices(current["field_type"], values["choices"], creating=False)
        recs.update(CUSTOM_FIELD, record_id, values, version)
        return self.get_after_write(recs, record_id)


def _check_choices(field_type: str, choices: list[str] | None, *, creating: bool) -> None:
    if field_type == "choice" and not choices:
        raise invalid_field("choices", "required when field_type is choice", "missing")
    # On update, sending choices at all (even null) to a non-choice field is a mistake.
    if field_type != "choice" and (choices is not None or not creating):
        raise invalid_field("choices", f"only allowed when field_type is choice, not {field_type}", "extra")


users = Users()
teams = Teams()
custom_fields = CustomFields()
