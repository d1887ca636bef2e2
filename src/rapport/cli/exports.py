"""``rapport export customers``: the customer list as CSV, XLSX, JSON Lines or vCard.

The export runs as a principal and goes through the same data-access layer and audit trail as the
API: ``--as USER`` exports what that (active) user may export, with their scope, hidden fields and
masks, audited under their id. Without ``--as`` it runs as the documented ``system`` principal
(administrator scope, audited with actor kind ``system``), as the other operator commands do; the
operator at the console already holds the database and its keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import SYSTEM, Principal
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER
from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database, settings
from rapport.customers.schemas import CustomerExportParams
from rapport.exports.service import BATCH_SIZE, plan_customer_export
from rapport.models import Team, User
from rapport.pagination import CursorCodec

app = typer.Typer(help="Export records to files (audited like API exports).", no_args_is_help=True)

ExportFormat = Literal["csv", "xlsx", "jsonl", "vcard"]


def _principal(session: object, username: str | None) -> Principal:
    if username is None:
        return SYSTEM
    row = (
        session.execute(  # type: ignore[attr-defined]
            select(
                User.id, User.username, User.role, User.team_id, User.is_active, User.preferred_language
            ).where(User.username == username)
        )
        .tuples()
        .first()
    )
    if row is None:
        fail(f"no user {username!r}")
    uid, name, role, team_id, active, language = row
    if not active:
        fail(f"user {username!r} is disabled")
    return Principal(
        user_id=uid, username=name, role=Role(role), team_id=team_id, language=language or "zh-CN"
    )


def _id_of(session: Session, column: Any, key_column: Any, value: str | None, what: str) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    found = session.execute(select(column).where(key_column == value)).scalar()
    if found is None:
        fail(f"no {what} {value!r}")
    return int(found)


@app.command("customers")
def customers_command(
    output: Path = typer.Option(..., "-o", "--output", help="File to write.", dir_okay=False),
    fmt: str = typer.Option("csv", "--format", help="csv, xlsx, jsonl or vcard."),
    stage: str | None = typer.Option(None, "--stage", help="Lifecycle stage, e.g. customer."),
    region: str | None = typer.Option(None, "--region", help="Region, e.g. 浙江省."),
    city: str | None = typer.Option(None, "--city", help="City."),
    tag: str | None = typer.Option(None, "--tag", help="Customers with this tag."),
    owner: str | None = typer.Option(None, "--owner", help="Owner: username or user id."),
    team: str | None = typer.Option(None, "--team", help="Team: name or id."),
    search: str | None = typer.Option(None, "--search", help="Name, phone or email, as the list's q."),
    bom: bool | None = typer.Option(
        None, "--bom/--no-bom", help="UTF-8 byte-order mark (default: on for csv, off otherwise)."
    ),
    as_user: str | None = typer.Option(
        None, "--as", help="Export as this user (their scope and masks); default: the system principal."
    ),
    batch_size: int = typer.Option(BATCH_SIZE, "--batch-size", min=100, max=50_000, help="Rows per batch."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Write the customers matching the filters (same as GET /customers) to FILE; audited."""
    if fmt not in ("csv", "xlsx", "jsonl", "vcard"):
        fail(f"unknown format {fmt!r}; choose csv, xlsx, jsonl or vcard", 2)
    cursors = CursorCodec(settings().resolved_secret_key())
    with open_database(url) as db, cli_errors():
        with db.unit(write=False) as session:
            principal = _principal(session, as_user)
            try:
                params = CustomerExportParams(
                    format=fmt,
                    bom=bom,
                    q=search,
                    lifecycle_stage=stage,
                    region=region,
                    city=city,
                    tag=tag,
                    owner_id=_id_of(session, User.id, User.username, owner, "user"),
                    team_id=_id_of(session, Team.id, Team.name, team, "team"),
                )
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                fail(problems)
            recs = Records(session, principal, cursors)
            plan = plan_customer_export(recs, params, batch_size=batch_size)
            t = CUSTOMER.table
            total = session.execute(
                select(func.count()).select_from(t).where(recs.visible(CUSTOMER), *plan.where)
            ).scalar_one()
        progress = Progress(
            TextColumn("[bold]export[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        task = progress.add_task(output.name, total=total)

        def counted() -> Iterator[list[list[Any]]]:
            for batch in plan.stream_batches(lambda: db.unit(write=False), cursors):
                progress.advance(task, len(batch))
                yield batch

        with progress, open(output, "wb") as fh:
            for chunk in plan.render(counted()):
                fh.write(chunk)
    typer.echo(f"{plan.rows} customers written to {output} ({fmt}, as {principal.username})")
