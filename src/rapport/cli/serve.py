"""``rapport serve``: migrate, then run the API under uvicorn."""

from __future__ import annotations

import typer
import uvicorn

from rapport.cli.common import database_url, redact
from rapport.cli.db import upgrade_to_head


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (PostgreSQL only)."),
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
) -> None:
    """Upgrade the schema (idempotent), then serve the API and its docs at /api/v1/docs."""
    url = database_url()
    # Never serve on an old schema: queries would fail in ways the API cannot explain.
    upgrade_to_head(url)
    if url.startswith("sqlite") and workers > 1:
        typer.echo(
            "note: SQLite allows one writer at a time and Rapport serialises writes inside one "
            "process, so running 1 worker instead of "
            f"{workers}; use PostgreSQL (RAPPORT_DATABASE_URL) for more.",
            err=True,
        )
        workers = 1
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
    )
