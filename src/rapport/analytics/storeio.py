"""Reads shared by the customer-value jobs (CLV, lifecycle, churn) from the analytics store.

The store (rapport.analytics.store) holds the contract tables; these helpers return plain numpy /
pandas data for the pure compute functions. Only orders whose status is a purchase
(``PURCHASE_STATUSES``) placed strictly before ``as_of`` count; profiling jobs score only customers
with ``profiling_allowed``.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from rapport.analytics.jobs import JobContext
from rapport.analytics.store import PURCHASE_STATUSES


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """The store keeps TIMESTAMP columns as naive UTC; aware datetimes are converted."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def profiling_customers(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Ids (ascending) of the customers that may be profiled."""
    rows = con.execute(
        "SELECT customer_id FROM customers WHERE profiling_allowed ORDER BY customer_id"
    ).fetchnumpy()
    return np.asarray(rows["customer_id"], dtype=np.int64)


def purchases(
    con: duckdb.DuckDBPyConnection, as_of: dt.datetime, *, profiling_only: bool = True
) -> pd.DataFrame:
    """Purchases before ``as_of``: customer_id, ordered_at, total_amount, margin_amount (NULL -> 0)."""
    placeholders = ", ".join("?" for _ in PURCHASE_STATUSES)
    consent = "AND c.profiling_allowed" if profiling_only else ""
    frame = con.execute(
        f"""
        SELECT o.customer_id, o.ordered_at,
               coalesce(o.total_amount, 0.0) AS total_amount,
               coalesce(o.margin_amount, 0.0) AS margin_amount
        FROM orders o JOIN customers c USING (customer_id)
        WHERE o.status IN ({placeholders}) AND o.ordered_at < ? {consent}
        ORDER BY o.ordered_at, o.order_id
        """,  # noqa: S608 - only placeholders are interpolated
        [*PURCHASE_STATUSES, naive_utc(as_of)],
    ).df()
    frame["customer_id"] = frame["customer_id"].astype(np.int64)
    return frame


def report(ctx: JobContext, done: int, total: int, message: str) -> None:
    """Tell the runner how far the job is (``JobContext.progress`` takes a fraction and a note)."""
    ctx.progress(done / total if total else 1.0, message)
