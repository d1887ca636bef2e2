"""Dashboard figures on a large SQLite database: how long the key-figure queries take per scope.

    .venv/bin/python bench/dashboard.py --customers 1000000 --orders 2000000 [--db FILE]

Builds (or reuses, with --db pointing at an existing file) a migrated database filled inside
SQLite with generated rows: customers spread over 2 teams, 20 owners, 6 stages and 12 regions;
orders over the last two years; open tasks. Then times, per scope (admin: all customers; a
sales rep: their team's half), the uncached figures (customers by stage and region, 12-month
revenue, overdue tasks) a few times and prints the median and the worst; then the cached read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from rapport import migrate
from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.dashboard import service
from rapport.db import make_engine
from rapport.pagination import CursorCodec

FMT = "%Y-%m-%d %H:%M:%S.000000"


def fill(url: str, customers: int, orders: int, tasks: int) -> None:
    engine = make_engine(url)
    now = dt.datetime.now(dt.UTC).strftime(FMT)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO team (id, name, created_at, updated_at, version)"
                " VALUES (1, 'East', :n, :n, 1), (2, 'North', :n, :n, 1)"
            ),
            {"n": now},
        )
        for i in range(1, 21):
            conn.execute(
                text(
                    "INSERT INTO app_user (id, username, display_name, role, team_id, is_active,"
                    " preferred_language, created_at, updated_at, version)"
                    " VALUES (:i, :u, :u, 'sales_rep', :t, 1, 'zh-CN', :n, :n, 1)"
                ),
                {"i": i, "u": f"rep{i}", "t": 1 + i % 2, "n": now},
            )
        t0 = time.perf_counter()
        conn.execute(
            text(
                """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
                INSERT INTO customer (id, display_name, lifecycle_stage, region, owner_id, team_id,
                                      attributes, created_at, updated_at, version)
                SELECT i, 'C' || i,
                       CASE i % 6 WHEN 0 THEN 'lead' WHEN 1 THEN 'prospect' WHEN 2 THEN 'customer'
                                  WHEN 3 THEN 'loyal' WHEN 4 THEN 'at_risk' ELSE 'churned' END,
                       'R' || (i * 7 % 12), 1 + i % 20, 1 + (1 + i % 20) % 2, '{}', :now, :now, 1
                FROM n
                """
            ),
            {"count": customers, "now": now},
        )
        print(f"customers: {customers:,} in {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        conn.execute(
            text(
                """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
                INSERT INTO sales_order (id, order_number, customer_id, status, channel, currency,
                                         total_amount, ordered_at, created_at, updated_at, version)
                SELECT i, 'B' || i, 1 + (i * 7919) % :customers,
                       CASE WHEN i % 10 = 0 THEN 'cancelled' ELSE 'completed' END, 'online', 'CNY',
                       (i % 500) + 9.9,
                       strftime('%Y-%m-%d %H:%M:%S.000000', 'now', '-' || (i % 730) || ' days'),
                       :now, :now, 1
                FROM n
                """
            ),
            {"count": orders, "customers": customers, "now": now},
        )
        print(f"orders: {orders:,} in {time.perf_counter() - t0:.1f} s", flush=True)
        conn.execute(
            text(
                """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
                INSERT INTO task (id, customer_id, title, status, priority, due_at, assignee_id,
                                  created_at, updated_at, version)
                SELECT i, 1 + (i * 104729) % :customers, 'T' || i,
                       CASE WHEN i % 3 = 0 THEN 'open' ELSE 'done' END,
                       'normal', strftime('%Y-%m-%d %H:%M:%S.000000', 'now', '-' || (i % 60 - 30) || ' days'),
                       1 + i % 20, :now, :now, 1
                FROM n
                """
            ),
            {"count": tasks, "customers": customers, "now": now},
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def timed(recs: Records, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        service.compute_figures(recs, now=dt.datetime.now(dt.UTC))
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=2_000_000)
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--db", type=Path, help="reuse (or create) this SQLite file")
    args = ap.parse_args()
    tmp = None
    path = args.db
    if path is None:
        tmp = tempfile.TemporaryDirectory(prefix="rapport-bench-dash-")
        path = Path(tmp.name) / "dash.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        migrate.upgrade(url)
        fill(url, args.customers, args.orders, args.tasks)
    engine = make_engine(url)
    cursors = CursorCodec("bench")
    principals = {
        "admin (all customers)": Principal(user_id=None, username="admin", role=Role.admin, team_id=None),
        "sales rep (team scope)": Principal(user_id=1, username="rep1", role=Role.sales_rep, team_id=2),
    }
    for name, principal in principals.items():
        with Session(engine) as session:
            recs = Records(session, principal, cursors)
            ms = timed(recs, args.runs)
            fig = service.compute_figures(recs, now=dt.datetime.now(dt.UTC))
            cache = service.FigureCache()
            service.figures(recs, cache=cache)
            t0 = time.perf_counter()
            for _ in range(1000):
                service.figures(recs, cache=cache)
            hit_us = (time.perf_counter() - t0) * 1000
            print(
                f"{name}: {fig.customers:,} customers; uncached median {statistics.median(ms):.0f} ms,"
                f" worst {max(ms):.0f} ms over {args.runs} runs; cached {hit_us:.1f} µs per read"
            )
    engine.dispose()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
