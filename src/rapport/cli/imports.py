"""``rapport import``: customers and orders from CSV/TSV, JSON Lines or .xlsx, as resumable jobs.

``rapport import customers FILE [--mapping MAPPING.json] [--mode upsert] [--match external_id,email,phone]
[--json] [--dry-run]`` creates a job and runs it here, batch by batch, with a progress bar; a run
that is killed continues with ``rapport import resume JOB``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database

if TYPE_CHECKING:
    from rapport.access.principal import Principal
    from rapport.db import Database

# The import pipeline (models, pypinyin, phonenumbers, pydantic schemas) is imported by the commands
# that run it, so `rapport import --help` does not load it.

app = typer.Typer(
    help="Import customers and orders from files, as resumable, revertible jobs.", no_args_is_help=True
)

_MODES = ("create", "update", "upsert")
_KEYS = ("external_id", "email", "phone")


def _principal(db: Database, username: str | None) -> Principal:
    from rapport.access.policy import Role
    from rapport.access.principal import SYSTEM, Principal

    if username is None:
        return SYSTEM
    from sqlalchemy import select

    from rapport.models import User

    with db.unit(write=False) as session:
        u = session.execute(select(User.id, User.role, User.team_id).where(User.username == username)).first()
    if u is None:
        fail(f"no user {username!r}")
    return Principal(user_id=u.id, username=username, role=Role(u.role), team_id=u.team_id)


def _mapping(path: Path | None) -> dict[str, str | None] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        fail(f"cannot read the mapping {path}: {exc}")
    if isinstance(data, dict) and isinstance(data.get("mapping"), dict):
        data = data["mapping"]
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in data.items()
    ):
        fail("the mapping must be a JSON object: source column -> Rapport field (or null)")
    return data


def _run(db: Database, job_id: int, as_json: bool, total_hint: int | None = None) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rapport.ingest import jobs

    if as_json or not sys.stderr.isatty():
        return jobs.run_job(db, job_id)
    columns = (
        TextColumn("[bold]import {task.fields[job]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("created {task.fields[c]} updated {task.fields[u]} rejected {task.fields[r]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("import", total=total_hint, job=job_id, c=0, u=0, r=0)

        def progress(state: dict[str, Any]) -> None:
            bar.update(
                task, completed=state["rows"], c=state["created"], u=state["updated"], r=state["rejected"]
            )

        return jobs.run_job(db, job_id, progress=progress)


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, default=str))
        return
    console.print(
        f"import {result['job_id']} {result['status']}: {result['created']} created, "
        f"{result['updated']} updated, "
        f"{result['unchanged']} unchanged, {result['rejected']} rejected"
    )
    if result["rejected"]:
        console.print(f"rejected rows: rapport import rejections {result['job_id']} -o rejected.csv")


def _start(
    kind: str,
    file: Path,
    mapping: Path | None,
    mode: str,
    match: str,
    batch_size: int,
    as_json: bool,
    dry_run: bool,
    user: str | None,
    url: str | None,
    day_first: bool,
    limit: int,
    match_duplicates: bool = False,
) -> None:
    from rapport.access.principal import SYSTEM
    from rapport.ingest import jobs
    from rapport.ingest.readers import ReadError

    if mode not in _MODES:
        fail(f"--mode must be one of {', '.join(_MODES)}", 2)
    keys = [k.strip() for k in match.split(",") if k.strip()]
    if not keys or any(k not in _KEYS for k in keys):
        fail(f"--match takes a comma-separated list of {', '.join(_KEYS)}", 2)
    if not file.is_file():
        fail(f"no file {file}")
    with open_database(url) as db, cli_errors():
        principal = _principal(db, user)
        try:
            if dry_run:
                with db.unit(write=False) as session:
                    out = jobs.preview(
                        session,
                        principal,
                        file,
                        kind=kind,
                        mode=mode,
                        match_keys=keys,
                        mapping=_mapping(mapping),
                        limit=limit,
                        day_first=day_first,
                    )
                typer.echo(json.dumps(out, ensure_ascii=False, default=str, indent=None if as_json else 2))
                return
            with db.unit(write=True) as session:
                job = jobs.create_job(
                    session,
                    principal,
                    file,
                    kind=kind,
                    mode=mode,
                    match_keys=keys,
                    mapping=_mapping(mapping),
                    batch_size=batch_size,
                    options={"day_first": day_first, "match_duplicates": match_duplicates},
                )
        except ReadError as exc:
            fail(str(exc))
        result = _run(db, job["id"], as_json)
    _print(result, as_json)
    if result["status"] == "failed":
        with open_database(url) as db, db.unit(write=False) as session:
            fail(str(jobs.get_job(session, SYSTEM, result["job_id"])["error"]))


_FILE = typer.Argument(..., help="CSV/TSV/TXT (any delimiter, UTF-8 or GBK), .jsonl or .xlsx")
_MAPPING = typer.Option(
    None, "--mapping", help="JSON object: source column -> Rapport field (null ignores it)"
)
_MODE = typer.Option("upsert", "--mode", help="create | update | upsert")
_MATCH = typer.Option("external_id,email,phone", "--match", help="Keys that find existing records, in order")
_BATCH = typer.Option(5000, "--batch-size", min=1, max=50_000, help="Rows per committed batch")
_JSON = typer.Option(False, "--json", help="Print the summary as JSON (job_id, created, updated, rejected)")
_DRY = typer.Option(
    False, "--dry-run", "--preview", help="Show the first rows and what would happen; write nothing"
)
_USER = typer.Option(None, "--as-user", help="Import as this user (their scope, owner of new records)")
_URL = typer.Option(None, "--url", help=URL_HELP)
_DAY_FIRST = typer.Option(True, "--day-first/--month-first", help="How 05/03/2024 reads")
_LIMIT = typer.Option(20, "--limit", help="Rows shown by --dry-run")


@app.command()
def customers(
    file: Path = _FILE,
    mapping: Path | None = _MAPPING,
    mode: str = _MODE,
    match: str = _MATCH,
    batch_size: int = _BATCH,
    as_json: bool = _JSON,
    dry_run: bool = _DRY,
    user: str | None = _USER,
    url: str | None = _URL,
    day_first: bool = _DAY_FIRST,
    limit: int = _LIMIT,
    match_duplicates: bool = typer.Option(
        False,
        "--match-duplicates",
        help="Compare rows no key matched with existing customers (duplicate-detection model); "
        "probable matches are updated instead of created",
    ),
) -> None:
    """Import customers with their phones, emails, WeChat, address, tags, external id and organisation."""
    _start(
        "customers",
        file,
        mapping,
        mode,
        match,
        batch_size,
        as_json,
        dry_run,
        user,
        url,
        day_first,
        limit,
        match_duplicates,
    )


@app.command()
def orders(
    file: Path = _FILE,
    mapping: Path | None = _MAPPING,
    mode: str = _MODE,
    match: str = _MATCH,
    batch_size: int = _BATCH,
    as_json: bool = _JSON,
    dry_run: bool = _DRY,
    user: str | None = _USER,
    url: str | None = _URL,
    day_first: bool = _DAY_FIRST,
    limit: int = _LIMIT,
) -> None:
    """Import orders, one line per row (rows of one order number together), matched to customers and SKUs."""
    _start("orders", file, mapping, mode, match, batch_size, as_json, dry_run, user, url, day_first, limit)


@app.command()
def organisations(
    file: Path = _FILE,
    mapping: Path | None = _MAPPING,
    mode: str = _MODE,
    batch_size: int = _BATCH,
    as_json: bool = _JSON,
    dry_run: bool = _DRY,
    user: str | None = _USER,
    url: str | None = _URL,
    limit: int = _LIMIT,
) -> None:
    """Import organisations, matched by exact name."""
    _start(
        "organisations",
        file,
        mapping,
        mode,
        "external_id",
        batch_size,
        as_json,
        dry_run,
        user,
        url,
        True,
        limit,
    )


@app.command()
def interactions(
    file: Path = _FILE,
    mapping: Path | None = _MAPPING,
    match: str = _MATCH,
    batch_size: int = _BATCH,
    as_json: bool = _JSON,
    dry_run: bool = _DRY,
    user: str | None = _USER,
    url: str | None = _URL,
    day_first: bool = _DAY_FIRST,
    limit: int = _LIMIT,
) -> None:
    """Import interactions (calls, visits, notes) of customers found by the match keys."""
    _start(
        "interactions",
        file,
        mapping,
        "upsert",
        match,
        batch_size,
        as_json,
        dry_run,
        user,
        url,
        day_first,
        limit,
    )


@app.command("mapping")
def propose_mapping(
    file: Path = _FILE,
    kind: str = typer.Option("customers", "--kind", help="customers | orders | organisations | interactions"),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the mapping here (default: stdout)"
    ),
) -> None:
    """Propose a mapping from the file's headers; edit it and pass it back with --mapping."""
    from rapport.ingest import jobs
    from rapport.ingest.readers import ReadError
    from rapport.ingest.service import propose

    if kind not in ("customers", "orders", "organisations", "interactions"):
        fail("--kind must be customers, orders, organisations or interactions", 2)
    try:
        proposals = propose(kind, jobs.headers_of(file))
    except ReadError as exc:
        fail(str(exc))
    text = json.dumps({p.column: p.field for p in proposals}, ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
    for p in proposals:
        typer.echo(f"  {p.column}: {p.field or '(ignored)'} - {p.reason} ({p.confidence:.2f})", err=True)


@app.command()
def status(job: int = typer.Argument(...), as_json: bool = _JSON, url: str | None = _URL) -> None:
    """Progress and counts of an import (a job whose process is gone shows as interrupted)."""
    from rapport.access.principal import SYSTEM
    from rapport.ingest import jobs

    with open_database(url) as db, cli_errors():
        jobs.interrupt_stale(db)
        with db.unit(write=False) as session:
            row = jobs.job_view(jobs.get_job(session, SYSTEM, job))
    if as_json:
        typer.echo(json.dumps(row, ensure_ascii=False, default=str))
    else:
        _print({**jobs.summary(row)}, False)
        console.print(
            f"checkpoint line {row['checkpoint_line']}, {row['batches_done']} batches; {row['error'] or ''}"
        )
        if row["status"] in jobs.RESUMABLE:
            console.print(f"continue it with: rapport import resume {job}")


@app.command()
def resume(job: int = typer.Argument(...), as_json: bool = _JSON, url: str | None = _URL) -> None:
    """Continue an interrupted (or failed) import from its checkpoint."""
    from rapport.access.principal import SYSTEM
    from rapport.ingest import jobs

    with open_database(url) as db, cli_errors():
        jobs.interrupt_stale(db)
        with db.unit(write=True) as session:
            jobs.resume_job(session, SYSTEM, job)
        result = _run(db, job, as_json)
    _print(result, as_json)


@app.command()
def cancel(job: int = typer.Argument(...), as_json: bool = _JSON, url: str | None = _URL) -> None:
    """Stop an import after its current batch (what is committed stays; revert undoes it)."""
    from rapport.access.principal import SYSTEM
    from rapport.ingest import jobs

    with open_database(url) as db, cli_errors(), db.unit(write=True) as session:
        row = jobs.cancel_job(session, SYSTEM, job)
    _print(jobs.summary(row), as_json) if as_json else console.print(
        f"import {job}: cancel requested ({row['status']})"
    )


@app.command()
def revert(job: int = typer.Argument(...), as_json: bool = _JSON, url: str | None = _URL) -> None:
    """Undo an import: remove what it created, restore what it updated (refused if changed since)."""
    from rapport.access.principal import SYSTEM
    from rapport.errors import Conflict
    from rapport.ingest import jobs

    with open_database(url) as db:
        try:
            with db.unit(write=True) as session:
                row = jobs.revert_job(session, SYSTEM, job)
        except Conflict as exc:
            if as_json:
                typer.echo(json.dumps({"detail": exc.detail, "errors": exc.errors}, ensure_ascii=False))
            for e in (exc.errors or [])[:20]:
                typer.echo(f"  {e['entity']} {e['record_id']}: {e['reason']}", err=True)
            fail(exc.detail)
        except Exception:
            with cli_errors():
                raise
    _print(jobs.summary(row), as_json)


@app.command()
def rejections(
    job: int = typer.Argument(...),
    output: Path | None = typer.Option(None, "-o", "--output", help="CSV file (default: stdout)"),
    url: str | None = _URL,
) -> None:
    """The rejected rows as CSV: line, column, field, reason."""
    from rapport.access.principal import SYSTEM
    from rapport.ingest import jobs

    with open_database(url) as db, cli_errors(), db.unit(write=False) as session:
        parts = list(jobs.rejections_csv(session, SYSTEM, job))
    text = "".join(parts)
    if output is None:
        typer.echo(text.removeprefix("\ufeff"), nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@app.command()
def prune(
    url: str | None = _URL,
    uploads: Path | None = typer.Option(
        None, "--uploads", help="Folder of uploaded import files (default: imports/ in the data directory)"
    ),
    upload_hours: int | None = typer.Option(
        None,
        "--upload-hours",
        min=1,
        help="Delete import-wizard uploads never started as a job after this many hours "
        "(default: RAPPORT_IMPORT_UPLOAD_HOURS)",
    ),
) -> None:
    """Forget before-images of imports past the revert window, and delete abandoned wizard
    uploads (run daily)."""
    from rapport.config import get_settings
    from rapport.ingest import jobs

    settings = get_settings()
    folder = uploads or jobs.upload_dir(settings)
    age = dt.timedelta(hours=upload_hours or settings.import_upload_hours)
    with open_database(url) as db, cli_errors(), db.unit(write=True) as session:
        n = jobs.purge_expired(session)
        removed = jobs.prune_uploads(session, folder, max_age=age)
    console.print(f"{n} before-images removed")
    console.print(f"{len(removed)} abandoned uploads deleted")
