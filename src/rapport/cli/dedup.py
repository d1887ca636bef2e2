"""`rapport dedup scan|eval`: find probable duplicate customers, and measure how well it does."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rapport.cli.common import URL_HELP, cli_errors, console, fail, open_database
from rapport.dedup import model

app = typer.Typer(
    help="Duplicate detection (probabilistic record linkage with Splink).", no_args_is_help=True
)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@app.command("scan")
def scan_command(
    threshold: float = typer.Option(
        model.DEFAULT_THRESHOLD, "--threshold", help="Match probability for a link."
    ),
    backend: str = typer.Option("duckdb", "--backend", help="duckdb (embedded) or spark (local)."),
    as_json: bool = typer.Option(False, "--json", help="Print the clusters as JSON."),
    url: str | None = typer.Option(None, "--url", help=URL_HELP),
) -> None:
    """Link every customer, store the run and its clusters (the review queue), print the clusters."""
    from rapport.dedup import service

    if backend not in ("duckdb", "spark"):
        fail("--backend must be duckdb or spark", 2)
    if not 0 < threshold < 1:
        fail("--threshold must be between 0 and 1", 2)
    with (
        open_database(url) as database,
        cli_errors(),
        _progress() as bar,
        database.unit(write=True) as session,
    ):
        task = bar.add_task("scan", total=1.0)

        def hook(step: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=step)

        result = service.scan(session, threshold=threshold, backend=backend, progress=hook)  # type: ignore[arg-type]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run_id": result.run_id,
                    "customers": result.customers,
                    "pairs_compared": result.compared,
                    "pairs_matched": result.matched,
                    "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                    "clusters": [
                        {
                            "id": c.id,
                            "members": c.members,
                            "pairs": [
                                {"left_id": a, "right_id": b, "probability": round(p, 6)}
                                for a, b, p in c.pairs
                            ],
                        }
                        for c in result.clusters
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    table = Table(
        "cluster", "members", "pairs (probability)", title=f"Duplicate clusters (run {result.run_id})"
    )
    for c in result.clusters[:200]:
        table.add_row(
            str(c.id),
            ", ".join(str(m) for m in c.members),
            "; ".join(f"{a}-{b} {p:.4f}" for a, b, p in c.pairs[:6]),
        )
    console.print(table)
    typer.echo(
        f"{result.customers:,} customers, {result.compared:,} pairs compared, {result.matched:,} pairs at or "
        f"above {threshold}, {len(result.clusters):,} clusters; "
        + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    )


def evaluate(
    customers: int, seed: int, rate: float, threshold: float, backend: str = "duckdb", url: str | None = None
) -> dict[str, Any]:
    """Demo customers with planted copies in a temporary SQLite database (or ``url``), scanned."""
    from sqlalchemy import select

    from rapport.access.specs import CUSTOMER
    from rapport.db import Database, make_engine
    from rapport.dedup import service, synth
    from rapport.demo.generator import DemoConfig, load_demo
    from rapport.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="rapport-dedup-eval-") as tmp:
        target = url or f"sqlite:///{Path(tmp) / 'eval.db'}"
        t = time.perf_counter()
        if url is None:
            upgrade(target)
        engine = make_engine(target)
        database = Database(engine)
        try:
            if url is None:
                with database.unit(write=True) as session:
                    load_demo(session, DemoConfig(customers=customers, seed=seed, max_orders_per_customer=2))
            load_seconds = time.perf_counter() - t
            t = time.perf_counter()
            with database.unit(write=True) as session:
                copies = synth.plant(session, rate=rate, seed=seed)
            plant_seconds = time.perf_counter() - t
            t = time.perf_counter()
            with database.unit(write=True) as session:
                result = service.scan(session, threshold=threshold, backend=backend)  # type: ignore[arg-type]
                ids = [int(x) for x in session.execute(select(CUSTOMER.table.c.id)).scalars()]
            scan_seconds = time.perf_counter() - t
        finally:
            engine.dispose()
    truth = service.truth_pairs(service.entities(ids, copies))
    found = service.cluster_pairs(c.members for c in result.clusters)
    q = service.quality(found, truth)
    return {
        "customers": len(ids),
        "planted_copies": len(copies),
        "pairs_compared": result.compared,
        "true_pairs": q.true_pairs,
        "found_pairs": q.found_pairs,
        "correct_pairs": q.correct_pairs,
        "precision": round(q.precision, 5),
        "recall": round(q.recall, 5),
        "f1": round(q.f1, 5),
        "threshold": threshold,
        "seconds": {
            "demo_load": round(load_seconds, 1),
            "plant": round(plant_seconds, 1),
            "scan": round(scan_seconds, 1),
            **{k: round(v, 1) for k, v in result.seconds.items()},
        },
    }


@app.command("eval")
def eval_command(
    customers: int = typer.Option(5000, "--customers", min=10, help="Demo customers to generate."),
    seed: int = typer.Option(42, "--seed", help="Seed of the demo data and of the damage."),
    rate: float = typer.Option(0.05, "--rate", help="Share of customers that get damaged copies."),
    threshold: float = typer.Option(model.DEFAULT_THRESHOLD, "--threshold", help="Match probability."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Precision, recall and F1 on pairs, on demo customers with planted damaged copies (temp database)."""
    with cli_errors():
        out = evaluate(customers, seed, rate, threshold)
    if as_json:
        typer.echo(json.dumps(out))
        return
    for key, value in out.items():
        typer.echo(f"{key}: {value}")
