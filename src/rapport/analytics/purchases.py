"""Reads of the analytics store (DuckDB) shared by the recommendation, rules and forecast jobs.

Only orders whose status is a purchase count (the ``OrderStatus`` values of rapport.orders.schemas:
pending, paid, shipped, completed, cancelled, refunded; of these paid, shipped and completed are
purchases). Every read is capped at the job's ``as_of`` so a frozen clock gives a frozen result.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from rapport.analytics.store import PURCHASE_STATUSES

_STATUS_SQL = ", ".join(f"'{s}'" for s in PURCHASE_STATUSES)


def purchase_lines(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> pd.DataFrame:
    """One row per purchased order line: order_id, customer_id, ordered_at, channel, currency, product_id,
    quantity, line_total."""
    return con.execute(
        f"""
        SELECT o.order_id, o.customer_id, o.ordered_at, o.channel, o.currency,
               l.product_id, l.quantity, l.line_total
        FROM orders o JOIN order_lines l ON l.order_id = o.order_id
        WHERE o.status IN ({_STATUS_SQL}) AND o.ordered_at <= ?
        ORDER BY o.ordered_at, o.order_id, l.line_id
        """,  # noqa: S608 - the status list is a module constant, the cap a parameter
        [as_of],
    ).df()


def purchase_orders(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> pd.DataFrame:
    """One row per purchase: order_id, customer_id, ordered_at, currency, total_amount."""
    return con.execute(
        f"""
        SELECT order_id, customer_id, ordered_at, currency, total_amount
        FROM orders WHERE status IN ({_STATUS_SQL}) AND ordered_at <= ?
        ORDER BY ordered_at, order_id
        """,  # noqa: S608 - the status list is a module constant, the cap a parameter
        [as_of],
    ).df()


def products(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "SELECT product_id, category, list_price, is_active FROM products ORDER BY product_id"
    ).df()


def customers(con: duckdb.DuckDBPyConnection, as_of: dt.datetime) -> pd.DataFrame:
    """customer_id, region, preferred_channel, profiling_allowed (NULL counts as not allowed)."""
    return con.execute(
        """
        SELECT customer_id, region, preferred_channel, coalesce(profiling_allowed, false) AS profiling_allowed
        FROM customers WHERE created_at IS NULL OR created_at <= ?
        ORDER BY customer_id
        """,
        [as_of],
    ).df()
