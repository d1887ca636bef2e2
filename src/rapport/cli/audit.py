"""``rapport audit``: verify the hash chain, and write checkpoints that reveal later truncation."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import typer

from rapport.audit.chain import VerifyResult, verify_chain
from rapport.cli.common import URL_HELP, cli_errors, fail, open_database

app = typer.Typer(help="Check the tamper-evident audit chain.", no_args_is_help=True)

_HASH = re.compile(r"^[0-9a-f]{64}$")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"checkpoint {path} does not exist")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"checkpoint {path} is not readable JSON: {exc}")
    seq, hash_ = (data.get("seq"), data.get("hash")) if isinstance(data, dict) else (None, None)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        fail(f"checkpoint {path}: 'seq' must be a non-negative integer")
    if not isinstance(hash_, str) or not _HASH.fullmatch(hash_):
        fail(f"checkpoint {path}: 'hash' must be 64 lower-case hex digits")
    return {"seq": seq, "hash": hash_}


def _verify(url: str | None, checkpoint: dict[str, Any] | None) -> VerifyResult:
    with open_database(url) as db, cli_errors(), db.unit(write=False) as session:
        return verify_chain(session, checkpoint)


@app.command()
def verify(
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="A file from `rapport audit checkpoint`; detects truncation since then."
    ),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Recompute the chain; exit 0 when intact, 1 naming the first position that does not hold."""
    expected = _read_checkpoint(checkpoint) if checkpoint else None
    result = _verify(url, expected)
    if not result.ok:
        fail(
            f"audit chain broken at position {result.bad_seq}: {result.reason} "
            f"({result.checked} event(s) before it verified)"
        )
    suffix = f"; matches checkpoint at {expected['seq']}" if expected else ""
    typer.echo(f"chain intact: {result.checked} events, last hash {result.last_hash}{suffix}")


@app.command()
def checkpoint(
    file: Path = typer.Argument(..., help="Where to write {seq, hash, at} (keep it off this server)."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Verify the chain and record its head, so a later `verify --checkpoint` notices deleted events."""
    result = _verify(url, None)
    if not result.ok:
        fail(f"audit chain broken at position {result.bad_seq}: {result.reason}; no checkpoint written")
    body = {
        "seq": result.last_seq,
        "hash": result.last_hash,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    tmp = file.with_name(f".{file.name}.tmp")
    try:
        tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, file)  # atomic: a crash never leaves half a checkpoint
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror or exc}")
    typer.echo(f"checkpoint written to {file}: seq {result.last_seq}, hash {result.last_hash}")
