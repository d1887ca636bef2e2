"""`rapport merge customers|undo`: merge duplicate customers from the shell, or undo a merge.

The command line runs as the system principal (like `rapport privacy erase`): the operator at
the console administers the installation. Every merge is audited like one made in the API.
"""

from __future__ import annotations

import json

import typer
from rich.table import Table

from rapport.access.principal import SYSTEM
from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database
from rapport.merge import service

app = typer.Typer(help="Merge duplicate customers, and undo merges.", no_args_is_help=True)


def _prefer(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit():
            fail(f"--prefer {item!r}: use field=customer_id, e.g. --prefer city=42")
        out[name] = int(value)
    return out


def _show(record: dict[str, object], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, default=str))
        return
    table = Table(title=f"Merge {record['id']} ({record['status']}): survivor {record['survivor_id']}")
    table.add_column("field")
    table.add_column("from customer")
    table.add_column("rule")
    choices = record["choices"]
    assert isinstance(choices, dict)
    for name, choice in choices.items():
        table.add_row(name, str(choice["from"]), choice["rule"])
    console.print(table)
    moved = record["moved"]
    assert isinstance(moved, dict)
    moved_text = ", ".join(f"{t} {n}" for t, n in moved.items() if n)
    console.print(f"moved: {moved_text or 'nothing'}")


@app.command("customers")
def merge_customers(
    survivor: int = typer.Argument(..., help="The customer that is kept."),
    merged: list[int] = typer.Argument(..., help="Duplicates merged into the survivor."),
    prefer: list[str] = typer.Option([], "--prefer", help="field=customer_id: keep that customer's value."),
    reason: str = typer.Option("", "--reason", help="Why (sealed in the merge record)."),
    as_json: bool = typer.Option(False, "--json", help="Print the merge record as JSON."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Merge MERGED... into SURVIVOR: fields by the survivorship rules, every related record moved."""
    overrides = _prefer(prefer)
    with open_database(url) as db, cli_errors(), db.unit(write=True) as session:
        result = service.merge_customers(session, SYSTEM, survivor, merged, overrides, reason)
        record = service.get_merge(session, SYSTEM, result.merge_id, audit=False)
    _show(record, as_json)


@app.command("undo")
def undo(
    merge_id: int = typer.Argument(..., help="The merge to undo."),
    as_json: bool = typer.Option(False, "--json", help="Print the merge record as JSON."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Undo a merge: records move back, the survivor's fields are restored, merged ids revive."""
    with open_database(url) as db, cli_errors(), db.unit(write=True) as session:
        service.undo_merge(session, SYSTEM, merge_id)
        record = service.get_merge(session, SYSTEM, merge_id, audit=False)
    _show(record, as_json)
