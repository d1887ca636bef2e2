"""``rapport keys``: field-encryption key versions, rotation and re-encryption."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database
from rapport.db import Database
from rapport.security import crypto
from rapport.security.keyring import (
    finish_rotation,
    key_versions,
    pending_rows,
    reencrypt_batches,
    rotation_in_progress,
    start_rotation,
    value_counts,
)
from rapport.security.keyring import rewrap as rewrap_keys

app = typer.Typer(
    help="Field-encryption keys: which versions exist, how many values each seals, rotation.",
    no_args_is_help=True,
)


def _status(db: Database) -> dict[str, Any]:
    with db.unit(write=False) as session:
        conn = session.connection()
        versions = key_versions(conn)
        counts = value_counts(conn)
    totals: dict[str, int] = {}
    for per_version in counts.values():
        for version, n in per_version.items():
            totals[version] = totals.get(version, 0) + n
    for v in versions:
        v["values"] = totals.get(str(v["id"]), 0)
    return {
        "master_key_id": crypto.provider().key_id,
        "field_encryption": crypto.encryption_enabled(),
        "blind_index_key": crypto.BLIND_INDEX_LABEL,
        "versions": versions,
        "plaintext_values": totals.get("plain", 0),
        "columns": counts,
    }


@app.command()
def status(
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Key versions and how many stored values each one seals, per column."""
    with open_database(url) as db, cli_errors():
        report = _status(db)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(
        f"master key {report['master_key_id']}; field encryption "
        f"{'on' if report['field_encryption'] else 'OFF'}; blind index key {report['blind_index_key']}"
    )
    table = Table(
        "version", "state", "created", "retired", "values sealed", title="data keys", title_justify="left"
    )
    for v in report["versions"]:
        table.add_row(
            str(v["id"]), v["state"], v["created_at"] or "", v["retired_at"] or "", str(v["values"])
        )
    if report["plaintext_values"]:
        table.add_row("(none)", "plaintext", "", "", str(report["plaintext_values"]))
    console.print(table)
    per_column = Table("column", "values per key version", title="per column", title_justify="left")
    for column, counts in report["columns"].items():
        per_column.add_row(column, ", ".join(f"{k}: {n}" for k, n in sorted(counts.items())) or "-")
    console.print(per_column)


@app.command()
def rotate(
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    batch_size: int = typer.Option(500, "--batch-size", min=1, max=100_000, help="Rows per committed batch."),
    max_batches: int | None = typer.Option(
        None, "--max-batches", min=1, help="Stop after this many batches; run again to resume."
    ),
    new: bool = typer.Option(
        False, "--new", help="Start another rotation even if one is unfinished (default: resume it)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on a terminal."),
) -> None:
    """New data-key version, then re-encrypt every value under it in committed batches.

    Readers keep working throughout: the old version decrypts until no value is left under it,
    then it is marked retired. Interrupted (Ctrl-C, crash, --max-batches)? Run it again: it
    resumes the unfinished rotation. Plaintext values (encryption turned on later) are sealed too.
    """
    with open_database(url) as db, cli_errors():
        if not crypto.encryption_enabled():
            fail("field encryption is off (RAPPORT_FIELD_ENCRYPTION); nothing to rotate")
        with db.unit(write=True) as session:
            conn = session.connection()
            if new or not rotation_in_progress(conn):
                version = start_rotation(conn)
                typer.echo(f"new data key version {version} is active")
            else:
                typer.echo("resuming the unfinished rotation")
        with db.unit(write=False) as session:
            total = sum(pending_rows(session.connection()).values())
        done = batches = 0
        columns = (
            TextColumn("re-encrypting {task.fields[table]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            task = bar.add_task("rows", total=total, table="")
            stopped = False
            for _ in range(3):  # later passes catch rows written under the old key meanwhile
                for batch in reencrypt_batches(lambda: db.unit(write=True), batch_size=batch_size):
                    done += batch.rows
                    batches += 1
                    bar.update(task, advance=batch.rows, table=batch.table)
                    if max_batches is not None and batches >= max_batches:
                        stopped = True
                        break
                if stopped:
                    break
                with db.unit(write=False) as session:
                    if not any(pending_rows(session.connection()).values()):
                        break
        with db.unit(write=True) as session:
            retired = [] if stopped else finish_rotation(session.connection())
            left = sum(pending_rows(session.connection()).values())
    typer.echo(f"re-encrypted {done} rows in {batches} batches")
    if left:
        typer.echo(f"{left} rows still hold values under an older key; run `rapport keys rotate` to resume")
    else:
        typer.echo(
            "every value is under the active key"
            + (f"; retired version(s) {', '.join(map(str, retired))}" if retired else "")
        )


@app.command()
def rewrap(
    new_key_file: Path = typer.Argument(..., help="File holding the new master key (mode 0600)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    generate: bool = typer.Option(False, "--generate", help="Create the file with a new random key first."),
) -> None:
    """Change the master key: re-wrap every data key and recompute the blind index.

    Stop the servers first; afterwards point RAPPORT_MASTER_KEY (or the data dir's master.key)
    at the new key and start them. Values are not re-encrypted: their data keys do not change.
    """
    if generate and new_key_file.exists():
        fail(f"{new_key_file} exists; refusing to overwrite a key")
    if not generate and not new_key_file.exists():
        fail(f"{new_key_file} does not exist (use --generate to create it)")
    with open_database(url) as db, cli_errors():
        old = crypto.provider()
        new = crypto.LocalKeyProvider(crypto.master_key_file(new_key_file))
        if new.key_id == old.key_id:
            fail("the new master key is the current one")
        with db.unit(write=True) as session:
            keys, digests = rewrap_keys(session.connection(), old, new)
    typer.echo(
        f"re-wrapped {keys} data key(s) under master key {new.key_id}; "
        f"recomputed {digests} blind index values"
    )
    typer.echo(
        f"now start Rapport with the key in {new_key_file} (RAPPORT_MASTER_KEY or <data dir>/master.key)"
    )
