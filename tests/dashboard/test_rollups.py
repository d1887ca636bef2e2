"""The dashboard rollups (kept by triggers) always equal what the base tables say, and revenue
months follow the business time zone."""

from __future__ import annotations

import datetime as dt
import importlib
from collections import Counter
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.analytics.store import PURCHASE_STATUSES
from rapport.dashboard import service
from rapport.models import (
    Customer,
    DashboardCustomerCount,
    DashboardOrderDay,
    DashboardTaskDay,
    Order,
    Task,
)
from rapport.models.base import table_of
from rapport.pagination import CursorCodec
from tests.factories import Factory

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
D = dt.timedelta
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _key(c: Any) -> tuple[int, int]:
    return (c["team_id"] or 0, c["owner_id"] or 0)


def expected(conn: Connection) -> tuple[Counter[Any], Counter[Any], Counter[Any]]:
    """The three rollups recomputed from the base tables in Python."""
    customers = {r["id"]: r for r in conn.execute(select(table_of(Customer))).mappings()}
    live = {cid: c for cid, c in customers.items() if c["deleted_at"] is None}
    counts: Counter[Any] = Counter()
    for c in live.values():
        counts[(*_key(c), c["lifecycle_stage"], c["region"] or "")] += 1
    orders: Counter[Any] = Counter()
    for o in conn.execute(select(table_of(Order))).mappings():
        c = live.get(o["customer_id"])
        if c is not None and o["status"] in PURCHASE_STATUSES:
            day = o["ordered_at"].astimezone(dt.UTC).date().isoformat()
            orders[(*_key(c), day, o["currency"], "cents")] += int(o["total_amount"] * 100)
            orders[(*_key(c), day, o["currency"], "n")] += 1
    tasks: Counter[Any] = Counter()
    for t in conn.execute(select(table_of(Task))).mappings():
        c = live.get(t["customer_id"])
        if c is not None and t["status"] == "open" and t["due_at"] is not None:
            day = t["due_at"].astimezone(dt.UTC).date().isoformat()
            tasks[(*_key(c), t["assignee_id"] or 0, day)] += 1
    return +counts, +orders, +tasks


def stored(conn: Connection) -> tuple[Counter[Any], Counter[Any], Counter[Any]]:
    counts: Counter[Any] = Counter()
    for r in conn.execute(select(table_of(DashboardCustomerCount))).mappings():
        counts[(r["team_id"], r["owner_id"], r["lifecycle_stage"], r["region"])] += r["customers"]
    orders: Counter[Any] = Counter()
    for r in conn.execute(select(table_of(DashboardOrderDay))).mappings():
        orders[(r["team_id"], r["owner_id"], r["day"], r["currency"], "cents")] += r["amount_cents"]
        orders[(r["team_id"], r["owner_id"], r["day"], r["currency"], "n")] += r["orders"]
    tasks: Counter[Any] = Counter()
    for r in conn.execute(select(table_of(DashboardTaskDay))).mappings():
        tasks[(r["team_id"], r["owner_id"], r["assignee_id"], r["day"])] += r["tasks"]
    return +counts, +orders, +tasks


def test_rollups_equal_the_base_tables_after_every_kind_of_write(
    connection: Connection, factory: Factory
) -> None:
    f, conn = factory, connection
    east, north = f.team(), f.team()
    rep_e, rep_n = f.user("sales_rep", east), f.user("sales_rep", north)
    a = f.customer(rep_e, east, lifecycle_stage="lead", region="华东")
    b = f.customer(rep_n, north, lifecycle_stage="customer", region=None)
    c = f.customer(None, None, lifecycle_stage="customer", region="华北")
    spare = f.customer(rep_e, east)
    o1 = f.order(a, Decimal("10.25"), ordered_at=NOW - D(days=1))
    o2 = f.order(a, Decimal("5.10"), ordered_at=NOW - D(days=40), status="paid")
    o3 = f.order(b, Decimal("7.00"), ordered_at=NOW, status="pending")
    f.order(c, Decimal("3.33"), ordered_at=NOW, currency="USD")
    t1 = f.task(a, rep_e, due_at=NOW - D(days=2))
    t2 = f.task(b, rep_n, due_at=NOW + D(days=1))
    f.task(c, None, due_at=None)
    assert stored(conn) == expected(conn)
    cust, order, task = table_of(Customer), table_of(Order), table_of(Task)
    writes = [
        update(cust).where(cust.c.id == a).values(owner_id=rep_n, team_id=north),  # reassign
        update(cust).where(cust.c.id == b).values(lifecycle_stage="loyal", region="华南"),
        update(cust).where(cust.c.id == c).values(deleted_at=NOW),  # soft delete
        update(cust).where(cust.c.id == c).values(region="西南"),  # while deleted
        update(cust).where(cust.c.id == c).values(deleted_at=None),  # restore
        update(cust).where(cust.c.id == b).values(version=5),  # no figure changes
        update(order).where(order.c.id == o1).values(status="cancelled"),
        update(order)
        .where(order.c.id == o2)
        .values(total_amount=Decimal("6.60"), ordered_at=NOW - D(days=3)),
        update(order).where(order.c.id == o3).values(status="shipped", currency="EUR"),
        update(order).where(order.c.id == o2).values(customer_id=b),  # moved to another customer
        update(task).where(task.c.id == t1).values(status="done"),
        update(task).where(task.c.id == t2).values(due_at=NOW - D(days=9)),
        update(task).where(task.c.id == t2).values(customer_id=a),
        update(task).where(task.c.id == t2).values(assignee_id=rep_e),
        delete(order).where(order.c.id == o1),
        delete(task).where(task.c.id == t1),
        delete(cust).where(cust.c.id == spare),  # hard delete (no orders)
    ]
    for stmt in writes:
        conn.execute(stmt)
        assert stored(conn) == expected(conn), str(stmt)
    counts, orders, tasks = stored(conn)
    assert counts == Counter(
        {(north, rep_n, "lead", "华东"): 1, (north, rep_n, "loyal", "华南"): 1, (0, 0, "customer", "西南"): 1}
    )
    assert orders[(north, rep_n, (NOW - D(days=3)).date().isoformat(), "CNY", "cents")] == 660
    assert tasks == Counter({(north, rep_n, rep_e, (NOW - D(days=9)).date().isoformat()): 1})


def test_the_migration_counts_the_purchases_the_analytics_count() -> None:
    migration = importlib.import_module("rapport.migrations.versions.0012_dashboard_rollups")
    assert "(" + ", ".join(f"'{s}'" for s in PURCHASE_STATUSES) + ")" == migration.PURCHASES


def admin(db: Session, factory: Factory) -> Records:
    principal = Principal(user_id=factory.user("admin"), username="a", role=Role.admin, team_id=None)
    return Records(db, principal, CursorCodec("test"))


def test_revenue_months_follow_the_business_time_zone(db: Session, factory: Factory) -> None:
    f = factory
    cid = f.customer(None, None)
    utc = dt.UTC
    f.order(cid, Decimal("1.00"), ordered_at=dt.datetime(2026, 5, 31, 15, 59, tzinfo=utc))  # 23:59 May 31
    f.order(cid, Decimal("2.00"), ordered_at=dt.datetime(2026, 5, 31, 16, 0, tzinfo=utc))  # 00:00 Jun 1
    f.order(cid, Decimal("4.00"), ordered_at=dt.datetime(2026, 5, 31, 23, 0, tzinfo=utc))  # Jun 1
    f.order(cid, Decimal("8.00"), ordered_at=dt.datetime(2026, 5, 31, 1, 0, tzinfo=utc))  # May 31
    f.order(cid, Decimal("16.00"), ordered_at=dt.datetime(2025, 6, 30, 15, 59, tzinfo=utc))  # June 2025: out
    f.order(cid, Decimal("32.00"), ordered_at=dt.datetime(2025, 6, 30, 16, 0, tzinfo=utc))  # Jul 1 2025
    f.order(cid, Decimal("64.00"), ordered_at=dt.datetime(2026, 6, 30, 15, 59, tzinfo=utc))  # Jun 30 23:59
    f.order(cid, Decimal("128.00"), ordered_at=dt.datetime(2026, 6, 30, 16, 0, tzinfo=utc))  # July: out
    f.order(cid, Decimal("256.00"), ordered_at=dt.datetime(2026, 5, 31, 17, 0, tzinfo=utc), currency="USD")
    fig = service.compute_figures(admin(db, f), now=NOW, tz=SHANGHAI)
    assert fig.revenue is not None
    got = {
        s.currency: {m.month: (str(m.amount), m.orders) for m in s.months if m.orders} for s in fig.revenue
    }
    assert got == {
        "CNY": {"2025-07": ("32.00", 1), "2026-05": ("9.00", 2), "2026-06": ("70.00", 3)},
        "USD": {"2026-06": ("256.00", 1)},
    }
    assert [m.month for m in fig.revenue[0].months][:2] == ["2025-07", "2025-08"]
    in_utc = service.compute_figures(admin(db, f), now=NOW, tz=dt.UTC)
    assert in_utc.revenue is not None
    cny = next(s for s in in_utc.revenue if s.currency == "CNY")
    assert {m.month: (str(m.amount), m.orders) for m in cny.months if m.orders} == {
        "2026-05": ("15.00", 4),
        "2026-06": ("192.00", 2),
    }
