"""Build a small in-memory analytics store with the store's own tables (rapport.analytics.store)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from rapport.analytics.store import ensure_schema


def make_store(
    customers: Sequence[dict[str, Any]],
    orders: Sequence[tuple[int, dt.datetime, str, float, float]] = (),
    interactions: Sequence[tuple[int, dt.datetime, str, str, str]] = (),
    tasks: Sequence[tuple[int, dt.datetime, dt.datetime | None, dt.datetime | None, str]] = (),
) -> duckdb.DuckDBPyConnection:
    """customers: dicts with customer_id and optional columns (profiling_allowed defaults true);
    orders: (customer_id, ordered_at, status, total, margin); interactions: (customer_id, at, kind,
    direction, channel); tasks: (customer_id, created_at, due_at, completed_at, status)."""
    con = duckdb.connect(":memory:")
    ensure_schema(con)
    for c in customers:
        con.execute(
            "INSERT INTO customers (customer_id, created_at, region, preferred_channel, acquisition_source,"
            " gender, profiling_allowed) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                c["customer_id"],
                c.get("created_at", dt.datetime(2023, 1, 1)),
                c.get("region"),
                c.get("preferred_channel"),
                c.get("acquisition_source"),
                c.get("gender"),
                c.get("profiling_allowed", True),
            ],
        )
    # Bulk loads through a registered DataFrame: executemany is slow in DuckDB.
    tables = {
        "orders": pd.DataFrame(
            [(i + 1, c, at, st, "web", "CNY", tot, mar) for i, (c, at, st, tot, mar) in enumerate(orders)],
            columns=["order_id", "customer_id", "ordered_at", "status", "channel", "currency", "total_amount",
                     "margin_amount"],
        ),
        "interactions": pd.DataFrame(
            [(i + 1, *row) for i, row in enumerate(interactions)],
            columns=["interaction_id", "customer_id", "occurred_at", "kind", "direction", "channel"],
        ),
        "tasks": pd.DataFrame(
            [(i + 1, *row, "normal") for i, row in enumerate(tasks)],
            columns=["task_id", "customer_id", "created_at", "due_at", "completed_at", "status", "priority"],
        ),
    }  # fmt: skip
    for name, frame in tables.items():
        if len(frame):
            con.register("incoming", frame)
            con.execute(f"INSERT INTO {name} SELECT * FROM incoming")
            con.unregister("incoming")
    return con
