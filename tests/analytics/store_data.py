"""A small analytics store built by hand; the expected values in the tests are worked out from it.

As of 2025-06-30 (a Monday), purchases (paid/shipped/completed) per customer:

    c1: 2025-01-05 100.10, 2025-03-05 200.20, 2025-06-30 23:00 50.00  -> F 3, M 350.30, recency 0
    c2: 2025-02-10 50.00 (+ a cancelled order)                         -> F 1, M 50.00, recency 140
    c3: 2025-03-01 1000.00 (+ a refunded order)                        -> F 1, M 1000.00, recency 121
    c4: 2025-05-15 300.00 (+ a pending order)                          -> F 1, M 300.00, recency 46
    c5: no orders, created after as_of
    c6: 2024-12-20 80.00, 2025-01-20 80.00 (+ one paid after as_of)    -> F 2, M 160.00, recency 161
    c7: 2025-01-10 40.00                                               -> F 1, M 40.00, recency 171
"""

from __future__ import annotations

import datetime as dt

import duckdb

from rapport.analytics.store import ensure_schema

AS_OF = dt.datetime(2025, 6, 30, tzinfo=dt.UTC)

CUSTOMERS = [
    # id, created_at, gender, birth_year, region, channel, stage, profiling_allowed
    (1, "2025-01-01", "female", 1990, "East", "email", "customer", True),
    (2, "2025-01-01", "male", 1960, "North", None, "lead", True),
    (3, "2025-01-01", None, None, "East", "sms", "customer", True),
    (4, "2025-01-01", "female", 2010, "=cmd", "email", "loyal", True),
    (5, "2025-07-15", "male", 1985, "North", "wechat", "customer", True),
    (6, "2024-12-01", "female", 1975, "East", "email", "customer", False),
    (7, "2025-01-01", "male", 2000, "North", "sms", "customer", True),
]

ORDERS = [
    # id, customer, ordered_at, status, total
    (1, 1, "2025-01-05 10:00", "paid", 100.10),
    (2, 1, "2025-03-05 10:00", "completed", 200.20),
    (3, 1, "2025-06-30 23:00", "shipped", 50.00),
    (4, 2, "2025-02-10 10:00", "shipped", 50.00),
    (5, 2, "2025-02-11 10:00", "cancelled", 999.00),
    (6, 3, "2025-03-01 10:00", "paid", 1000.00),
    (7, 4, "2025-06-01 10:00", "pending", 70.00),
    (8, 4, "2025-05-15 10:00", "paid", 300.00),
    (9, 6, "2024-12-20 10:00", "completed", 80.00),
    (10, 6, "2025-01-20 10:00", "completed", 80.00),
    (11, 6, "2025-07-01 10:00", "paid", 500.00),
    (12, 3, "2025-03-01 11:00", "refunded", 20.00),
    (13, 7, "2025-01-10 10:00", "completed", 40.00),
]


def build(con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    con = con or duckdb.connect()
    ensure_schema(con)
    con.executemany(
        "INSERT INTO customers (customer_id, created_at, gender, birth_year, region, preferred_channel, "
        "lifecycle_stage, profiling_allowed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        CUSTOMERS,
    )
    con.executemany(
        "INSERT INTO orders (order_id, customer_id, ordered_at, status, channel, currency, total_amount, "
        "margin_amount) VALUES (?, ?, ?, ?, 'online', 'CNY', ?, 0)",
        ORDERS,
    )
    return con
