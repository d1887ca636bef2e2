"""``rapport demo``: load deterministic demo data and say how to log in."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine

from rapport.cli.common import URL_HELP, cli_errors, console, database_url, open_database, redact, settings
from rapport.cli.db import upgrade_to_head
from rapport.db import refresh_statistics
from rapport.demo.generator import (
    DEFAULT_DEMO_PASSWORD,
    DEFAULT_MAX_ORDERS,
    DemoConfig,
    DemoResult,
    ProgressFn,
    customer_count,
    load_demo,
)

LOGIN_URL = "http://127.0.0.1:8000"


class _PlainProgress:
    """Progress for logs and CI: a line per tenth, no terminal control codes."""

    def __init__(self) -> None:
        self.next_mark = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != "customers" or total == 0:
            return
        if done >= self.next_mark or done == total:
            typer.echo(f"customers: {done}/{total}")
            self.next_mark = done + max(1, total // 10)


def _report(result: DemoResult, password_from_env: bool, password: str) -> None:
    table = Table("rows", "count", title="Loaded")
    for name, count in result.counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    typer.echo(
        f"{result.rows:,} rows in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s); "
        f"first customer: {result.first_customer}"
    )
    users = Table("username", "role", "team", title="Demo users")
    for user, created in result.users:
        note = "" if created else " (existing, password unchanged)"
        users.add_row(user.username + note, user.role, user.team or "-")
    console.print(users)
    source = "RAPPORT_DEMO_PASSWORD" if password_from_env else "built-in default"
    typer.echo(f"password for new demo users ({source}): {password}")
    typer.echo(f"log in: {LOGIN_URL}  (API docs: {LOGIN_URL}/api/v1/docs)")
    typer.echo(
        f"curl -s -X POST {LOGIN_URL}/api/v1/auth/token -d username=sales.east -d 'password={password}'"
    )


def demo(
    customers: int = typer.Option(5000, "--customers", min=0, help="How many customers to generate."),
    seed: int = typer.Option(42, "--seed", help="Same seed, same data."),
    if_empty: bool = typer.Option(False, "--if-empty", help="Do nothing when customers already exist."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
    max_orders: int = typer.Option(
        DEFAULT_MAX_ORDERS,
        "--max-orders",
        min=0,
        help="Cap on orders per customer (lower for huge loads).",
    ),
    jobs: int | None = typer.Option(
        None, "--jobs", min=0, help="Generator processes (0: none, default: cores - 1 for big loads)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on a terminal."),
) -> None:
    """Load demo teams, users, products, customers, orders and activities (upgrades the schema first)."""
    cfg = settings()
    password = cfg.demo_password or DEFAULT_DEMO_PASSWORD
    resolved = database_url(url)
    upgrade_to_head(resolved)
    config = DemoConfig(
        customers=customers, seed=seed, password=password, max_orders_per_customer=max_orders, workers=jobs
    )
    with open_database(resolved) as db, cli_errors(), db.unit(write=True) as session:
        existing = customer_count(session)
        if if_empty and existing:
            typer.echo(f"{redact(resolved)} already has {existing:,} customers; --if-empty: nothing loaded")
            return
        typer.echo(f"loading {customers:,} demo customers (seed {seed}) into {redact(resolved)}")
        if progress and console.is_terminal:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("customers", total=customers)

                def advance(phase: str, done: int, total: int) -> None:
                    if phase == "customers":
                        bar.update(task, completed=done)

                result = load_demo(session, config, advance)
        else:
            plain: ProgressFn = _PlainProgress() if progress else (lambda _p, _d, _t: None)
            result = load_demo(session, config, plain)
    with open_database(resolved) as db, cli_errors():
        assert isinstance(db.bind, Engine)
        refresh_statistics(db.bind)
    _report(result, bool(cfg.demo_password), password)
