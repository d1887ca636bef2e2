"""A small analytics store in memory with exactly the contract's tables (plus scores, consents)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

AS_OF = dt.datetime(2026, 11, 1)

STORE_DDL = (
    "CREATE TABLE customers(customer_id BIGINT PRIMARY KEY, created_at TIMESTAMP, organisation_id BIGINT,"
    " gender VARCHAR, birth_year INTEGER, region VARCHAR, city VARCHAR, preferred_channel VARCHAR,"
    " preferred_language VARCHAR, acquisition_source VARCHAR, lifecycle_stage VARCHAR, owner_id BIGINT,"
    " team_id BIGINT, profiling_allowed BOOLEAN)",
    "CREATE TABLE orders(order_id BIGINT PRIMARY KEY, customer_id BIGINT, ordered_at TIMESTAMP,"
    " status VARCHAR, channel VARCHAR, currency VARCHAR, total_amount DOUBLE, margin_amount DOUBLE)",
    "CREATE TABLE order_lines(line_id BIGINT PRIMARY KEY, order_id BIGINT, product_id BIGINT,"
    " quantity DOUBLE, unit_price DOUBLE, discount_amount DOUBLE, line_total DOUBLE)",
    "CREATE TABLE products(product_id BIGINT PRIMARY KEY, sku VARCHAR, name VARCHAR, category VARCHAR,"
    " list_price DOUBLE, is_active BOOLEAN)",
    "CREATE TABLE interactions(interaction_id BIGINT PRIMARY KEY, customer_id BIGINT,"
    " occurred_at TIMESTAMP, kind VARCHAR, direction VARCHAR, channel VARCHAR)",
    "CREATE TABLE tasks(task_id BIGINT PRIMARY KEY, customer_id BIGINT, created_at TIMESTAMP,"
    " due_at TIMESTAMP, completed_at TIMESTAMP, status VARCHAR, priority VARCHAR)",
    "CREATE TABLE scores(customer_id BIGINT, kind VARCHAR, value DOUBLE, label VARCHAR)",
    "CREATE TABLE consents(customer_id BIGINT, purpose VARCHAR, granted BOOLEAN)",
)


def empty_store() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    for ddl in STORE_DDL:
        con.execute(ddl)
    return con


def customer(
    con: duckdb.DuckDBPyConnection,
    cid: int,
    *,
    region: str = "华东",
    team_id: int = 1,
    owner_id: int = 10,
    profiling: bool = True,
    created_days_ago: int = 400,
    **extra: Any,
) -> None:
    con.execute(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            cid,
            AS_OF - dt.timedelta(days=created_days_ago),
            extra.get("organisation_id"),
            extra.get("gender", "female"),
            extra.get("birth_year", 1990),
            region,
            extra.get("city", "上海市"),
            extra.get("preferred_channel", "wechat"),
            "zh-CN",
            "web",
            extra.get("lifecycle_stage", "customer"),
            owner_id,
            team_id,
            profiling,
        ],
    )


def order(
    con: duckdb.DuckDBPyConnection,
    oid: int,
    cid: int,
    days_ago: float,
    total: float,
    status: str = "completed",
) -> None:
    con.execute(
        "INSERT INTO orders VALUES (?, ?, ?, ?, 'web', 'CNY', ?, ?)",
        [oid, cid, AS_OF - dt.timedelta(days=days_ago), status, total, total * 0.3],
    )


def score(
    con: duckdb.DuckDBPyConnection, cid: int, kind: str, value: float | None, label: str | None = None
) -> None:
    con.execute("INSERT INTO scores VALUES (?, ?, ?, ?)", [cid, kind, value, label])


def consent(con: duckdb.DuckDBPyConnection, cid: int, purpose: str, granted: bool = True) -> None:
    con.execute("INSERT INTO consents VALUES (?, ?, ?)", [cid, purpose, granted])
