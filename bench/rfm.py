"""RFM on many transactions: Rapport's pipeline (Ibis on DuckDB) against hand-written DuckDB SQL,
pandas and Spark local mode, on the same synthetic data, with a check that all answers are equal.

    .venv/bin/python bench/rfm.py                      # 10,000,000 transactions, 1,000,000 customers
    .venv/bin/python bench/rfm.py --transactions 1000000 --no-spark

Data: generated with numpy (seeded) and loaded into an in-memory DuckDB store table ``orders``.
Customers' activity is skewed (Beta-distributed ids), amounts are Gamma-distributed with cents,
about 15 % of orders do not count (pending, cancelled, refunded). Each engine is timed from its
input table to a pandas frame of per-customer scores (best of --repeat runs; Spark: one run after
a warm-up on a small slice, load into Spark timed separately).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import duckdb
import ibis
import numpy as np
import pandas as pd

from rapport.analytics import metrics
from rapport.analytics.store import PURCHASE_STATUSES, ensure_schema

AS_OF = dt.date(2025, 6, 30)
COLUMNS = ["customer_id", "recency_days", "frequency", "monetary", "r", "f", "m", "fm", "segment"]


def generate(con: duckdb.DuckDBPyConnection, n: int, customers: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ensure_schema(con)
    start = np.datetime64("2023-01-01T00:00")
    minutes = rng.integers(0, 912 * 24 * 60, n)  # through 2025-06-30
    statuses = np.array(["paid", "shipped", "completed", "pending", "cancelled", "refunded"])
    frame = pd.DataFrame(
        {
            "order_id": np.arange(1, n + 1, dtype=np.int64),
            "customer_id": (rng.beta(0.7, 1.6, n) * customers).astype(np.int64) + 1,
            "ordered_at": start + minutes.astype("timedelta64[m]"),
            "status": pd.Categorical.from_codes(
                rng.choice(6, n, p=[0.35, 0.2, 0.3, 0.05, 0.06, 0.04]), categories=statuses
            ),
            "total_amount": np.round(rng.gamma(2.0, 60.0, n), 2),
        }
    )
    con.register("gen", frame)
    con.execute(
        "INSERT INTO orders (order_id, customer_id, ordered_at, status, channel, currency, total_amount) "
        "SELECT order_id, customer_id, ordered_at, CAST(status AS VARCHAR), 'online', 'CNY', total_amount "
        "FROM gen"
    ).fetchall()
    con.unregister("gen")


def hand_sql(bins: int = 5) -> str:
    statuses = ", ".join(f"'{s}'" for s in PURCHASE_STATUSES)
    end = AS_OF + dt.timedelta(days=1)
    return f"""
    WITH s AS (
        SELECT customer_id,
               count(*) AS frequency,
               round(sum(total_amount), 2) AS monetary,
               DATE '{AS_OF}' - CAST(max(ordered_at) AS DATE) AS recency_days
        FROM orders
        WHERE status IN ({statuses}) AND ordered_at < TIMESTAMP '{end}'
        GROUP BY customer_id
    ), scored AS (
        SELECT customer_id, recency_days, frequency, monetary,
               (rank() OVER (ORDER BY recency_days DESC) - 1) * {bins} // count(*) OVER () + 1 AS r,
               (rank() OVER (ORDER BY frequency) - 1) * {bins} // count(*) OVER () + 1 AS f,
               (rank() OVER (ORDER BY monetary) - 1) * {bins} // count(*) OVER () + 1 AS m
        FROM s
    ), fm AS (SELECT *, (f + m + 1) // 2 AS fm FROM scored)
    SELECT customer_id, recency_days, frequency, monetary, r, f, m, fm,
           CASE
             WHEN r >= 4 AND fm >= 4 THEN 'champions'
             WHEN r = 1 AND fm >= 4 THEN 'cannot lose them'
             WHEN r <= 2 AND fm >= 3 THEN 'at risk'
             WHEN r = 3 AND fm >= 4 THEN 'loyal'
             WHEN r = 5 AND f = 1 THEN 'new customers'
             WHEN r >= 4 AND fm >= 2 THEN 'potential loyalists'
             WHEN r >= 4 THEN 'promising'
             WHEN r = 3 AND fm = 3 THEN 'need attention'
             WHEN r = 3 THEN 'about to sleep'
             WHEN r = 2 THEN 'hibernating'
             ELSE 'lost'
           END AS segment
    FROM fm ORDER BY customer_id
    """


def pandas_rfm(orders: pd.DataFrame, bins: int = 5) -> pd.DataFrame:
    end = pd.Timestamp(AS_OF + dt.timedelta(days=1))
    p = orders[orders["status"].isin(PURCHASE_STATUSES) & (orders["ordered_at"] < end)]
    s = p.groupby("customer_id", sort=True).agg(
        frequency=("order_id", "size"), monetary=("total_amount", "sum"), last=("ordered_at", "max")
    )
    s["monetary"] = s["monetary"].round(2)
    s["recency_days"] = (pd.Timestamp(AS_OF) - s["last"].dt.normalize()).dt.days
    n = len(s)

    def score(col: pd.Series, ascending: bool) -> pd.Series:
        rank = col.rank(method="min", ascending=ascending).astype(np.int64) - 1
        return rank * bins // n + 1

    s["r"] = score(s["recency_days"], ascending=False)
    s["f"] = score(s["frequency"], ascending=True)
    s["m"] = score(s["monetary"], ascending=True)
    s["fm"] = (s["f"] + s["m"] + 1) // 2
    r, f, fm = s["r"], s["f"], s["fm"]
    s["segment"] = np.select(
        [
            (r >= 4) & (fm >= 4),
            (r == 1) & (fm >= 4),
            (r <= 2) & (fm >= 3),
            (r == 3) & (fm >= 4),
            (r == 5) & (f == 1),
            (r >= 4) & (fm >= 2),
            r >= 4,
            (r == 3) & (fm == 3),
            r == 3,
            r == 2,
        ],
        [
            "champions",
            "cannot lose them",
            "at risk",
            "loyal",
            "new customers",
            "potential loyalists",
            "promising",
            "need attention",
            "about to sleep",
            "hibernating",
        ],
        default="lost",
    )
    return s.reset_index()[COLUMNS]


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[COLUMNS].copy()
    for col in ("customer_id", "recency_days", "frequency", "r", "f", "m", "fm"):
        out[col] = out[col].astype(np.int64)
    out["monetary"] = out["monetary"].astype(np.float64)
    out["segment"] = out["segment"].astype(object)
    return out.sort_values("customer_id").reset_index(drop=True)


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--spark-cores", type=int, default=2)
    args = parser.parse_args()

    con = duckdb.connect()
    started = time.perf_counter()
    generate(con, args.transactions, args.customers, args.seed)
    gen_seconds = time.perf_counter() - started
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    print(f"generated {args.transactions:,} transactions in {gen_seconds:.1f} s (DuckDB threads: {threads})")

    backend = ibis.duckdb.from_connection(con)
    rows: list[tuple[str, float, str]] = []

    rapport_s, rapport_df = best(
        lambda: backend.execute(metrics.rfm(backend.table("orders"), AS_OF)), args.repeat
    )
    reference = normalise(rapport_df)
    rows.append(("Rapport: Ibis expression on DuckDB", rapport_s, "reference"))

    sql = hand_sql()
    sql_s, sql_df = best(lambda: con.sql(sql).df(), args.repeat)
    rows.append(("hand-written DuckDB SQL", sql_s, _check(reference, sql_df)))

    frame = con.sql("SELECT order_id, customer_id, ordered_at, status, total_amount FROM orders").df()
    frame["status"] = frame["status"].astype("category")
    pandas_s, pandas_df = best(lambda: pandas_rfm(frame), max(1, args.repeat - 1))
    rows.append(("pandas (groupby + rank)", pandas_s, _check(reference, pandas_df)))

    if not args.no_spark:
        from rapport.analytics.spark import copy_tables, local_session

        spark = local_session(cores=args.spark_cores, app_name="rapport-bench")
        spark.sparkContext.setLogLevel("ERROR")
        started = time.perf_counter()
        con.execute(
            "CREATE OR REPLACE TEMP VIEW orders_min AS SELECT order_id, customer_id, ordered_at, "
            "status, total_amount FROM orders"
        ).fetchall()
        sb = copy_tables(spark, con, ["orders_min"])
        spark.table("orders_min").cache().count()
        load_s = time.perf_counter() - started
        spark_orders = sb.table("orders_min")
        sb.execute(metrics.rfm(spark_orders.limit(10_000), AS_OF))  # warm-up: JIT, planner
        spark_s, spark_df = best(lambda: sb.execute(metrics.rfm(spark_orders, AS_OF)), 1)
        rows.append(
            (f"Spark local[{args.spark_cores}], same Ibis expression", spark_s, _check(reference, spark_df))
        )
        rows.append((f"  (loading {args.transactions:,} rows into Spark via Arrow)", load_s, ""))
        spark.stop()

    purchasers = len(reference)
    print(
        f"\nRFM as of {AS_OF}: {purchasers:,} purchasers, segments: "
        + ", ".join(f"{k} {v:,}" for k, v in reference["segment"].value_counts().items())
    )
    width = max(len(r[0]) for r in rows)
    print(f"\n{'engine':<{width}}  {'seconds':>8}  {'vs Rapport':>10}  result")
    for name, seconds, check in rows:
        ratio = f"{seconds / rapport_s:.2f}x" if check else ""
        print(f"{name:<{width}}  {seconds:8.2f}  {ratio:>10}  {check}")


def _check(reference: pd.DataFrame, other: pd.DataFrame) -> str:
    got = normalise(other)
    try:
        pd.testing.assert_frame_equal(reference, got, check_exact=True)
    except AssertionError as exc:
        return "DIFFERENT: " + str(exc).splitlines()[0]
    return "equal"


if __name__ == "__main__":
    main()
