"""``rapport user`` and ``rapport team``: accounts managed from the server's shell."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.audit.chain import PendingEvent
from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database
from rapport.db import record_audit
from rapport.models import Team, User
from rapport.security.passwords import policy_problems
from rapport.users.schemas import UserCreate
from rapport.users.service import create_user, ensure_team, set_active

user_app = typer.Typer(help="Create, disable, enable and list users.", no_args_is_help=True)
team_app = typer.Typer(help="Create and list teams.", no_args_is_help=True)


def _audit(session: Session, action: str, resource: str, record_id: int, fields: list[str]) -> None:
    # The CLI runs with the server's own authority: recorded as the system, marked as the CLI.
    record_audit(
        session,
        PendingEvent(
            action=action,
            resource=resource,
            record_id=str(record_id),
            fields=fields,
            actor_kind="system",
            details={"via": "cli"},
        ),
    )


def _find_team(session: Session, ref: str) -> Team:
    clause = Team.id == int(ref) if ref.isdigit() else Team.name == ref
    team = session.execute(select(Team).where(clause)).scalar_one_or_none()
    if team is None:
        names = session.execute(select(Team.name).order_by(Team.name)).scalars().all()
        known = ", ".join(names) if names else "none yet; create one with `rapport team create`"
        fail(f"team '{ref}' not found (teams: {known})")
    return team


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "input"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


def _print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table on a terminal; tab-separated lines (nothing truncated) for pipes and scripts."""
    if not console.is_terminal:
        for row in (header, *rows):
            typer.echo("\t".join(row))
        return
    table = Table(*header)
    for row in rows:
        table.add_row(*map(escape, row))
    console.print(table)


@user_app.command("create")
def create(
    username: str = typer.Argument(..., help="Login name: 3-64 of a-z 0-9 . _ -"),
    role: Role = typer.Option(..., "--role", help="What the user may do."),
    team: str | None = typer.Option(None, "--team", help="Team name or id."),
    display_name: str | None = typer.Option(None, "--display-name", help="Defaults to the username."),
    email: str | None = typer.Option(None, "--email"),
    password: str | None = typer.Option(
        None, "--password", help="Prefer the prompt: a password on the command line lands in shell history."
    ),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Create a user; the password is asked for (hidden) unless --password is given."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    problems = policy_problems(password, username)
    if problems:
        fail("password refused: " + "; ".join(problems))
    try:
        body = UserCreate.model_validate(
            {
                "username": username,
                "role": role.value,
                "display_name": display_name,
                "email": email,
                "password": password,
            }
        )
    except ValidationError as exc:
        fail(_validation_message(exc))
    with open_database(url) as db, cli_errors(), db.unit(write=True) as session:
        team_id = _find_team(session, team).id if team else None
        user = create_user(
            session,
            username=body.username,
            password=body.password,
            role=body.role.value,
            display_name=body.display_name,
            team_id=team_id,
            email=body.email,
        )
        fields = sorted(
            k for k in ("username", "display_name", "email", "role", "team_id") if getattr(user, k)
        )
        _audit(session, "create", "user", user.id, [*fields, "password_hash"])
        user_id = user.id
    typer.echo(f"created user {body.username} (id {user_id}, role {role.value})")


@user_app.command("disable")
def disable(
    username: str = typer.Argument(..., help="The user to disable."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Disable a user; their tokens and API keys stop working immediately."""
    _set_active(username, False, url)
    typer.echo(f"disabled {username}; their sessions and API keys are revoked")


@user_app.command("enable")
def enable(
    username: str = typer.Argument(..., help="The user to enable."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Enable a disabled user (they log in again; revoked tokens stay revoked)."""
    _set_active(username, True, url)
    typer.echo(f"enabled {username}")


def _set_active(username: str, active: bool, url: str | None) -> None:
    with open_database(url) as db, cli_errors(), db.unit(write=True) as session:
        user = set_active(session, username, active)
        _audit(session, "enable" if active else "disable", "user", user.id, ["is_active"])


@user_app.command("list")
def list_users(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """List every user with role, team and status."""
    with open_database(url) as db, cli_errors(), db.unit(write=False) as session:
        rows = session.execute(
            select(
                User.id,
                User.username,
                User.display_name,
                User.role,
                Team.name,
                User.is_active,
                User.last_login_at,
            )
            .outerjoin(Team, Team.id == User.team_id)
            .order_by(User.username)
        ).all()
    _print_rows(
        ("id", "username", "name", "role", "team", "active", "last login"),
        [
            (
                str(r.id),
                r.username,
                r.display_name,
                r.role,
                r.name or "-",
                "yes" if r.is_active else "no",
                r.last_login_at.strftime("%Y-%m-%d %H:%M") if r.last_login_at else "-",
            )
            for r in rows
        ],
    )
    typer.echo(f"{len(rows)} user(s)")


@team_app.command("create")
def create_team(
    name: str = typer.Argument(..., help="Team name, e.g. 华东 East."),
    description: str | None = typer.Option(None, "--description"),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Create a team (no-op when one with this name exists)."""
    clean = " ".join(name.split())
    if not clean or len(clean) > 100:
        fail("team name must be 1-100 characters")
    with open_database(url) as db, cli_errors(), db.unit(write=True) as session:
        existed = session.execute(select(func.count()).where(Team.name == clean)).scalar_one() > 0
        team = ensure_team(session, clean, description)
        if not existed:
            _audit(session, "create", "team", team.id, ["name", "description"] if description else ["name"])
        team_id = team.id
    typer.echo(f"{'team exists' if existed else 'created team'}: {clean} (id {team_id})")


@team_app.command("list")
def list_teams(url: str | None = typer.Option(None, "--url", help=URL_HELP)) -> None:
    """List teams and how many users each has."""
    with open_database(url) as db, cli_errors(), db.unit(write=False) as session:
        rows = session.execute(
            select(Team.id, Team.name, func.count(User.id))
            .outerjoin(User, User.team_id == Team.id)
            .group_by(Team.id, Team.name)
            .order_by(Team.name)
        ).all()
    _print_rows(("id", "name", "users"), [(str(i), name, str(n)) for i, name, n in rows])
