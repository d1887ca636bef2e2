"""``rapport privacy``: the record of processing, printed from the column declarations."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from rapport.cli.common import console
from rapport.privacy.inventory import inventory as build_inventory

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
            "hidden from",
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
                "\n".join(col["hidden_from"]),
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
