"""``rapport serve``: migrate, then run the API under uvicorn."""

from __future__ import annotations

import typer
import uvicorn
from sqlalchemy import Engine

from rapport.cli.common import cli_errors, database_url, open_database, redact
from rapport.cli.db import upgrade_to_head
from rapport.db import refresh_statistics


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Worker processes. On SQLite their writes queue on one file lock; reads run in parallel.",
    ),
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
    access_log: bool = typer.Option(
        False,
        "--access-log/--no-access-log",
        help="Log every request line (off by default: the audit chain and request ids already "
        "record who did what, and the line costs time on every request).",
    ),
) -> None:
    """Upgrade the schema (idempotent), then serve the API and its docs at /api/v1/docs."""
    url = database_url()
    # Never serve on an old schema: queries would fail in ways the API cannot explain.
    upgrade_to_head(url)
    with open_database(url) as db, cli_errors():
        assert isinstance(db.bind, Engine)
        if refresh_statistics(db.bind, only_if_missing=True):
            typer.echo("computed planner statistics (first start on this database)")
    if reload and workers > 1:
        typer.echo("note: --reload runs a single worker.", err=True)
        workers = 1
    typer.echo(f"serving {redact(url)} on http://{host}:{port} (API docs: /api/v1/docs)")
    uvicorn.run(
        "rapport.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        access_log=access_log,
    )
