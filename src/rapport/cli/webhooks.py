"""``rapport webhooks deliver``: send pending webhook deliveries (run it every minute)."""

from __future__ import annotations

import typer

from rapport.cli.common import console, open_database, settings
from rapport.security import outbound
from rapport.webhooks.service import deliver_pending

app = typer.Typer(help="Webhook deliveries.", no_args_is_help=True)


@app.command()
def deliver(limit: int = typer.Option(100, min=1, max=10_000, help="Most deliveries to send")) -> None:
    """Send pending deliveries to their receivers (URLs are vetted again before each send)."""
    cfg = settings()
    outbound.set_allowed_networks(cfg.outbound_allow_networks)
    with open_database() as database:
        counts = deliver_pending(database, limit=limit)
    console.print(", ".join(f"{k}: {v}" for k, v in counts.items()))
