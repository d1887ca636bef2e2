"""``rapport privacy``: record of processing, data-subject requests, erasure, export, retention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from rapport.access.principal import SYSTEM
from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database
from rapport.http import dumps
from rapport.models.base import utcnow
from rapport.privacy import requests as dsr
from rapport.privacy import tasks
from rapport.privacy.common import records
from rapport.privacy.inventory import inventory as build_inventory
from rapport.privacy.portability import (
    export_customer,
    from_csv_zip,
    import_customer,
    to_csv_zip,
)
from rapport.privacy.retention import Rule, rules

app = typer.Typer(
    help="Personal data: what is held, why, for how long and who sees it.", no_args_is_help=True
)


def _readers(column: dict[str, Any]) -> str:
    if not column["served"]:
        return "not served by the API"
    return "\n".join(f"{role}/{scope}" for role, scope in column["readers"].items()) or "nobody"


def _render(record: dict[str, Any]) -> None:
    for entry in record["tables"]:
        title = (
            f"{entry['table']}: {entry['description']} — subjects {', '.join(entry['subjects'])}; "
            f"retention {entry['retention']}"
        )
        if entry["resource"] is None:
            title += f"; {entry['exposure']}"
        table = Table(title=title, title_justify="left", show_lines=True)
        headings = (
            "column",
            "category",
            "purposes",
            "retention",
            "at rest",
            "read in full by",
            "hidden / masked",
        )
        for heading in headings:
            table.add_column(heading, overflow="fold")
        for col in entry["columns"]:
            if col["personal"]:
                category = col["category"] + (f" ({col['subtype']})" if col["subtype"] else "")
            else:
                category = f"not personal: {col['note']}"
            table.add_row(
                col["column"],
                category,
                "\n".join(col["purposes"]),
                # Only where a column outlives or precedes its row; the title gives the table's.
                col["retention"] if col["retention"] not in (None, entry["retention"]) else "",
                col["at_rest"].replace("_", " "),
                _readers(col) if entry["resource"] else "",
                "\n".join(
                    [*col["hidden_from"], *(f"{r} (masked: {m})" for r, m in col["masked_for"].items())]
                ),
            )
        console.print(table)
    console.print("Tables without personal data:")
    for item in record["not_personal"]:
        console.print(f"  {item['table']}: {item['reason']}")


@app.command()
def inventory(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """The record of processing: per table, each column's category, purposes, retention and readers."""
    record = build_inventory()
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
    else:
        _render(record)


@app.command("requests")
def list_requests(
    overdue: bool = typer.Option(False, "--overdue", help="Only open requests past their deadline."),
    notify: bool = typer.Option(
        False, "--notify", help="Alert once per overdue request (audit event and notification hooks)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Open data-subject requests with their deadlines; exit 1 when any is overdue."""
    with open_database(url) as db:
        notified: list[int] = []
        if notify:
            with cli_errors():
                notified = tasks.notify_overdue_requests(db)
        with cli_errors(), db.unit(write=False) as session:
            recs = records(session, SYSTEM)
            if overdue:
                rows = dsr.overdue_rows(recs)
            else:
                t = dsr.SPEC.table
                stmt = recs.select(dsr.SPEC).where(t.c.status.in_([s.value for s in dsr.OPEN]))
                rows = [dict(r) for r in session.execute(stmt.order_by(t.c.due_at, t.c.id)).mappings()]
            late = {r["id"] for r in dsr.overdue_rows(recs)} if rows else set()
    if as_json:
        typer.echo(dumps({"requests": rows, "overdue": sorted(late), "notified": notified}).decode())
    else:
        table = Table(title="Overdue data-subject requests" if overdue else "Open data-subject requests")
        for heading in ("id", "customer", "kind", "status", "law", "due", "assignee", ""):
            table.add_column(heading)
        for r in rows:
            table.add_row(
                str(r["id"]),
                str(r["customer_id"]),
                r["kind"],
                r["status"],
                r["jurisdiction"],
                r["due_at"].isoformat(timespec="minutes"),
                str(r["assignee_id"] or ""),
                "OVERDUE" if r["id"] in late else "",
            )
        console.print(table)
        if notify:
            console.print(f"notified {len(notified)} newly overdue request(s)")
    if late:
        raise typer.Exit(1)


@app.command()
def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be purged; change nothing."),
    vacuum: bool = typer.Option(
        True, "--vacuum/--no-vacuum", help="Rebuild the database file afterwards so erased bytes are gone."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Apply the retention rules: anonymise inactive customers, delete old texts, exports and tokens."""
    with (
        open_database(url) as db,
        cli_errors(),
        Progress(TextColumn("{task.description}"), BarColumn(), console=console, transient=as_json) as bar,
    ):
        job = bar.add_task("retention rules", total=len(rules(utcnow())))

        def step(rule: Rule, count: int) -> None:
            bar.update(job, advance=1, description=f"{rule.name}: {count}")

        report = tasks.run_purge(db, dry_run=dry_run, vacuum=vacuum, progress=step)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    table = Table(title="Retention purge (dry run: nothing changed)" if dry_run else "Retention purge")
    for heading in ("rule", "action", "before", "count"):
        table.add_column(heading)
    for r in report.results:
        table.add_row(r.rule, r.action, r.cutoff.isoformat(timespec="seconds"), str(r.count))
    console.print(table)
    verb = "would touch" if dry_run else "touched"
    console.print(f"{verb} {report.total} record(s)" + ("" if dry_run else "; recorded in the audit chain"))


@app.command()
def erase(
    customer_id: int = typer.Argument(..., help="The customer to erase."),
    reason: str = typer.Option(..., "--reason", help="Why, e.g. dsr:42 (a code enters the audit chain)."),
    vacuum: bool = typer.Option(True, "--vacuum/--no-vacuum", help="Rebuild the file afterwards."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Erase one person everywhere (irreversible); the audit chain records ids and counts only."""
    with open_database(url) as db, cli_errors():
        report = tasks.run_erasure(db, customer_id, actor=SYSTEM, reason=reason, vacuum=vacuum)
    typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))


@app.command("export")
def export_command(
    customer_id: int = typer.Argument(..., help="The customer to export."),
    csv_zip: bool = typer.Option(False, "--csv", help="CSV files in a ZIP instead of JSON."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Write one person's data (rapport.customer-export/1) for an access or portability request."""
    with open_database(url) as db, cli_errors(), db.unit(write=False) as session:
        data = export_customer(session, customer_id, actor=SYSTEM)
    body = to_csv_zip(data) if csv_zip else dumps(data)
    output.write_bytes(body)
    output.chmod(0o600)
    typer.echo(f"wrote {output} ({len(body)} bytes)")


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="A JSON export or a ZIP of CSV files."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Create a customer from an export (this or another Rapport); prints the new id."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    with cli_errors():
        try:
            data = from_csv_zip(raw) if raw[:2] == b"PK" else orjson.loads(raw)
        except orjson.JSONDecodeError:
            fail(f"{file} is neither JSON nor a ZIP of CSV files")
        with open_database(url) as db, db.unit(write=True) as session:
            new_id = import_customer(records(session, SYSTEM), data)
    typer.echo(f"imported as customer {new_id}")
