"""Aggregate queries behind the home dashboard, in SQLAlchemy Core.

Key figures read the trigger-kept rollups (``rapport.models.dashboard``): a few thousand rows
per scope instead of millions; the base tables answer only the pieces a rollup cannot (the part of
a UTC day before a business-time-zone month boundary, today's tasks due before now).

Every function takes the caller's scope as ready-made WHERE clauses (built by
:meth:`rapport.access.records.Records.visible`), so the figures cover exactly the records the
caller could list. The queries are single scans over indexed columns:

* counts per lifecycle stage / region use ``ix_customer_lifecycle_stage_id`` / ``ix_customer_region_id``;
* revenue per month is one pass over ``ix_sales_order_ordered_at_id`` for the last twelve months,
  grouped by currency and month;
* tasks due use ``ix_task_assignee_id_status_due_at``;
* recent activity walks ``ix_interaction_occurred_at_id`` / ``ix_sales_order_ordered_at_id``
  backwards and stops after ``limit`` rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, cast, func, select


def count_by(
    conn: Connection, table: Table, column: str, where: Sequence[ColumnElement[bool]]
) -> list[tuple[str | None, int]]:
    """(value, count) for each value of ``column`` among the visible rows, largest first."""
    col = table.c[column]
    n = func.count().label("n")
    stmt = select(col, n).where(*where).group_by(col)
    rows = [(r[0], int(r[1])) for r in conn.execute(stmt)]
    # Sorted here, not in SQL: ties and empty values then order the same on every database
    # (collations and NULL placement differ), and the groups are few.
    rows.sort(key=lambda r: (-r[1], r[0] is None, r[0] or ""))
    return rows


def count(conn: Connection, table: Table, where: Sequence[ColumnElement[bool]]) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def month_key(conn: Connection, column: Any) -> Any:
    """'YYYY-MM' of a UTC timestamp column, computed by the database (one GROUP BY, no per-row
    CASE): SQLite stores UTC timestamps as ISO text, PostgreSQL converts from timestamptz."""
    if conn.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM")
    return func.substr(column, 1, 7)


def sums_by_month(
    conn: Connection,
    table: Table,
    *,
    at: str,
    amount: str,
    group: str,
    start: dt.datetime,
    end: dt.datetime,
    where: Sequence[ColumnElement[bool]],
) -> dict[str, dict[str, tuple[Decimal, int]]]:
    """group value (a currency) -> 'YYYY-MM' -> (sum of ``amount``, rows), for start <= at < end."""
    t = table
    ts = t.c[at]
    month = month_key(conn, ts).label("month")
    key = t.c[group]
    stmt = (
        select(key, month, func.sum(t.c[amount]).label("total"), func.count().label("n"))
        .where(ts >= start, ts < end, *where)
        .group_by(key, month)
    )
    out: dict[str, dict[str, tuple[Decimal, int]]] = {}
    for row in conn.execute(stmt).mappings():
        out.setdefault(row[group], {})[row["month"]] = (
            Decimal(row["total"] or 0).quantize(Decimal("0.01")),
            int(row["n"]),
        )
    return out


def newest(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    *,
    at: str,
    where: Sequence[ColumnElement[bool]],
    limit: int,
) -> list[dict[str, Any]]:
    """The ``limit`` newest visible rows by ``at`` (ties broken by id, newest first)."""
    t = table
    stmt = (
        select(*(t.c[c] for c in columns)).where(*where).order_by(t.c[at].desc(), t.c.id.desc()).limit(limit)
    )
    return [dict(r) for r in conn.execute(stmt).mappings()]


def oldest(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    *,
    at: str,
    where: Sequence[ColumnElement[bool]],
    limit: int,
) -> list[dict[str, Any]]:
    """The ``limit`` visible rows with the earliest ``at`` (ties broken by id)."""
    t = table
    stmt = select(*(t.c[c] for c in columns)).where(*where).order_by(t.c[at], t.c.id).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def names(
    conn: Connection, table: Table, column: str, ids: Sequence[int], where: Sequence[ColumnElement[bool]]
) -> dict[int, Any]:
    """``column`` of the visible rows with these ids."""
    if not ids:
        return {}
    t = table
    stmt = select(t.c.id, t.c[column]).where(t.c.id.in_(sorted(set(ids))), *where)
    return {int(r[0]): r[1] for r in conn.execute(stmt)}


def rollup_customers(
    conn: Connection, table: Table, where: Sequence[ColumnElement[bool]]
) -> list[tuple[int, str, str, int]]:
    """(owner id, stage, region, customers) of the visible rollup rows (owner 0, region '': none)."""
    t = table
    stmt = (
        select(t.c.owner_id, t.c.lifecycle_stage, t.c.region, func.sum(t.c.customers))
        .where(*where)
        .group_by(t.c.owner_id, t.c.lifecycle_stage, t.c.region)
    )
    return [(int(r[0]), r[1], r[2], int(r[3])) for r in conn.execute(stmt) if r[3]]


def order_days(
    conn: Connection, table: Table, *, first: str, last: str, where: Sequence[ColumnElement[bool]]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(UTC day, currency) -> (cents, orders) of the visible rollup rows, first <= day <= last."""
    t = table
    stmt = (
        select(t.c.day, t.c.currency, func.sum(t.c.amount_cents), func.sum(t.c.orders))
        .where(t.c.day >= first, t.c.day <= last, *where)
        .group_by(t.c.day, t.c.currency)
    )
    return {(r[0], r[1]): (int(r[2] or 0), int(r[3] or 0)) for r in conn.execute(stmt)}


def tasks_due_before(
    conn: Connection, table: Table, *, day: str, where: Sequence[ColumnElement[bool]]
) -> int:
    """Open tasks of the visible rollup rows due on a UTC day before ``day``."""
    t = table
    stmt = select(func.coalesce(func.sum(t.c.tasks), 0)).where(t.c.day < day, *where)
    return int(conn.execute(stmt).scalar_one())


def cents_by(
    conn: Connection,
    table: Table,
    *,
    at: str,
    amount: str,
    group: str,
    start: dt.datetime,
    end: dt.datetime,
    where: Sequence[ColumnElement[bool]],
) -> dict[str, tuple[int, int]]:
    """group value -> (sum of ``amount`` in cents, rows) for start <= at < end, rounded per row
    exactly as the rollup triggers do."""
    t = table
    ts = t.c[at]
    cents = cast(func.round(t.c[amount] * 100), BigInteger)
    stmt = (
        select(t.c[group], func.sum(cents), func.count())
        .where(ts >= start, ts < end, *where)
        .group_by(t.c[group])
    )
    return {r[0]: (int(r[1] or 0), int(r[2])) for r in conn.execute(stmt)}
