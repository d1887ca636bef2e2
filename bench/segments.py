"""Time segment evaluation on an analytics store of synthetic customers.

    .venv/bin/python bench/segments.py [--customers 1000000] [--runs 50] [--threads 2] [--file PATH]

Builds the store tables of the analytics contract (customers, orders, interactions, tasks) plus
scores and consents with DuckDB's own random generator (seeded), builds ``segment_features`` once
(timed), then evaluates each rule shape ``--runs`` times the way POST /segments/preview does
(count + first 20 ids) and prints p50/p99 wall time and the mean CPU time (all DuckDB threads)
per evaluation in milliseconds, with the load average (wall times on a shared machine mostly
measure the queue for a core). Rules go through the same Pydantic
validation and compiler as the API.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from typing import Any

import duckdb

from rapport.segments.evaluate import Visibility, preview
from rapport.segments.features import build_features
from rapport.segments.rules import Definition

AS_OF = dt.datetime(2026, 11, 1)
CLUSTERS = ("high-value frequent", "mid-value occasional", "lapsed low-value one-timers", "new mid-value")
REGIONS = ("上海市", "浙江省", "江苏省", "北京市", "广东省", "四川省", "山东省", "湖北省")

SHAPES: dict[str, dict[str, Any]] = {
    "issue example (top 20% clv, churn > 0.6, consent)": {
        "op": "and",
        "rules": [
            {"op": "top", "field": "clv_12m", "percent": 20},
            {"op": ">", "field": "churn_risk", "value": 0.6},
            {"op": "consent", "purpose": "marketing_wechat"},
        ],
    },
    "one comparison (churn_risk > 0.8)": {"op": ">", "field": "churn_risk", "value": 0.8},
    "in + between (region, recency 30-180 d)": {
        "op": "and",
        "rules": [
            {"op": "in", "field": "region", "values": list(REGIONS[:3])},
            {"op": "between", "field": "recency_days", "low": 30, "high": 180},
        ],
    },
    "or + not consent (cluster or frequent buyers, no SMS)": {
        "op": "and",
        "rules": [
            {
                "op": "or",
                "rules": [
                    {"op": "=", "field": "cluster", "value": CLUSTERS[0]},
                    {"op": ">=", "field": "orders", "value": 5},
                ],
            },
            {"op": "not", "rule": {"op": "consent", "purpose": "marketing_sms"}},
        ],
    },
    "wide tree (4 x 5 leaves)": {
        "op": "or",
        "rules": [
            {
                "op": "and",
                "rules": [
                    {"op": "=", "field": "region", "value": REGIONS[g]},
                    {"op": ">", "field": "spend_12m", "value": 100 * g},
                    {"op": "<", "field": "recency_days", "value": 365},
                    {"op": "top", "field": "p_alive", "percent": 50},
                    {"op": "!=", "field": "gender", "value": "unknown"},
                ],
            }
            for g in range(4)
        ],
    },
}


def build_store(con: duckdb.DuckDBPyConnection, customers: int) -> dict[str, int]:
    con.execute("SELECT setseed(0.42)")
    regions = "[" + ", ".join(f"'{r}'" for r in REGIONS) + "]"
    clusters = "[" + ", ".join(f"'{c}'" for c in CLUSTERS) + "]"
    # Names and literals below are this script's constants.
    con.execute(
        f"""
        CREATE OR REPLACE TABLE customers AS
        SELECT i AS customer_id,
               TIMESTAMP '2026-11-01' - to_days(CAST(3 + floor(random() * 1000) AS INTEGER)) AS created_at,
               CASE WHEN random() < 0.25 THEN CAST(floor(random() * 60000) AS BIGINT) END AS organisation_id,
               CASE WHEN random() < 0.51 THEN 'female' WHEN random() < 0.98 THEN 'male' ELSE 'unknown' END
                   AS gender,
               CAST(1950 + floor(random() * 58) AS INTEGER) AS birth_year,
               {regions}[1 + CAST(floor(random() * {len(REGIONS)}) AS INTEGER)] AS region,
               'city' AS city, 'wechat' AS preferred_channel, 'zh-CN' AS preferred_language,
               'web' AS acquisition_source, 'customer' AS lifecycle_stage,
               CAST(1 + floor(random() * 10) AS BIGINT) AS owner_id,
               CAST(1 + floor(random() * 2) AS BIGINT) AS team_id,
               random() < 0.9 AS profiling_allowed
        FROM range(1, {customers} + 1) t(i)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE orders AS
        WITH n AS (SELECT customer_id, CAST(floor(-ln(random()) * 3) AS INTEGER) AS k FROM customers)
        SELECT row_number() OVER () AS order_id, customer_id,
               TIMESTAMP '2026-11-01' - to_days(CAST(floor(random() * 730) AS INTEGER)) AS ordered_at,
               CASE WHEN random() < 0.92 THEN 'completed' ELSE 'cancelled' END AS status,
               'web' AS channel, 'CNY' AS currency,
               round(exp(5.5 + random() * 2), 2) AS total_amount, 0.0 AS margin_amount
        FROM n, range(k)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE interactions AS
        SELECT row_number() OVER () AS interaction_id, customer_id,
               TIMESTAMP '2026-11-01' - to_days(CAST(floor(random() * 365) AS INTEGER)) AS occurred_at,
               'call' AS kind, 'inbound' AS direction, 'phone' AS channel
        FROM customers WHERE random() < 0.45
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE tasks AS
        SELECT row_number() OVER () AS task_id, customer_id, TIMESTAMP '2026-10-01' AS created_at,
               TIMESTAMP '2026-10-04' AS due_at, NULL::TIMESTAMP AS completed_at,
               CASE WHEN random() < 0.5 THEN 'open' ELSE 'done' END AS status, 'high' AS priority
        FROM customers WHERE random() < 0.2
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE scores AS
        SELECT customer_id, kind,
               CASE kind WHEN 'clv_12m' THEN exp(4 + random() * 4)
                         WHEN 'cluster' THEN NULL ELSE random() END AS value,
               CASE kind WHEN 'cluster' THEN {clusters}[1 + CAST(floor(random() * 4) AS INTEGER)] END AS label
        FROM customers, (VALUES ('clv_12m'), ('p_alive'), ('churn_risk'), ('cluster')) k(kind)
        WHERE profiling_allowed
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TABLE consents AS
        SELECT customer_id, purpose, random() < 0.8 AS granted
        FROM customers, (VALUES ('marketing_wechat'), ('marketing_sms'), ('profiling')) p(purpose)
        WHERE random() < 0.6
        """
    )
    return {
        t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[index]
        for t in ("customers", "orders", "interactions", "tasks", "scores", "consents")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--file", default=":memory:", help="DuckDB file (default: in memory)")
    args = parser.parse_args()

    con = duckdb.connect(args.file)
    con.execute(f"SET threads = {int(args.threads)}")
    started = time.perf_counter()
    sizes = build_store(con, args.customers)
    print(
        f"store built in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
    )
    started = time.perf_counter()
    rows = build_features(con, AS_OF)
    print(f"segment_features: {rows:,} rows in {time.perf_counter() - started:.2f}s")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'rule shape':<56} {'members':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>8}")
    cases = [(name, shape, Visibility()) for name, shape in SHAPES.items()]
    cases.append(("issue example, team-scoped caller", SHAPES[next(iter(SHAPES))], Visibility(1, 3, False)))
    for name, shape, vis in cases:
        rule = Definition.model_validate({"rule": shape}).rule
        times = []
        count = 0
        cpu0 = time.process_time()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            count = preview(con, rule, vis).count
            times.append((time.perf_counter() - t0) * 1000)
        cpu = (time.process_time() - cpu0) * 1000 / args.runs
        times.sort()
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        print(f"{name:<56} {count:>9,} {statistics.median(times):>8.1f} {p99:>8.1f} {cpu:>8.1f}")


if __name__ == "__main__":
    main()
