"""The metrics are written once with Ibis: Spark (local mode) and DuckDB must give identical results.

One module-scoped Spark session (Java 17); the data are random but fixed by the seed, with ties in
frequency and spend so the rank-based scores are exercised.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from typing import Any

import duckdb
import ibis
import numpy as np
import pandas as pd
import pytest

from rapport.analytics import metrics
from rapport.analytics.store import ensure_schema

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java")

AS_OF = dt.date(2025, 6, 30)


def _data(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(20251130)
    n_customers, n_orders = 300, 2500
    ensure_schema(con)
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n_customers + 1, dtype="int64"),
            "created_at": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(rng.integers(0, 900, n_customers), unit="D"),
            "gender": rng.choice(np.array(["female", "male", None], dtype=object), n_customers),
            "birth_year": pd.array(
                np.where(rng.random(n_customers) < 0.1, -1, rng.integers(1940, 2012, n_customers)),
                dtype="Int64",
            ).astype("Int64"),
            "region": rng.choice(np.array(["East", "North", "South", None], dtype=object), n_customers),
            "preferred_channel": rng.choice(np.array(["email", "sms", "wechat"], dtype=object), n_customers),
            "lifecycle_stage": rng.choice(np.array(["lead", "customer", "loyal"], dtype=object), n_customers),
        }
    )
    customers.loc[customers.birth_year == -1, "birth_year"] = pd.NA
    # Whole-yuan or .50 amounts: many exact ties in spend; a third of customers buy once.
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, n_orders + 1, dtype="int64"),
            "customer_id": rng.integers(1, n_customers + 1, n_orders),
            "ordered_at": pd.Timestamp("2023-06-01")
            + pd.to_timedelta(rng.integers(0, 800 * 24 * 60, n_orders), unit="min"),
            "status": rng.choice(
                np.array(["paid", "shipped", "completed", "pending", "cancelled", "refunded"], dtype=object),
                n_orders,
                p=[0.3, 0.2, 0.35, 0.05, 0.05, 0.05],
            ),
            "total_amount": rng.integers(2, 400, n_orders) * 2.5,
        }
    )
    con.register("c_df", customers)
    con.register("o_df", orders)
    con.execute(
        "INSERT INTO customers (customer_id, created_at, gender, birth_year, region, preferred_channel, "
        "lifecycle_stage) SELECT customer_id, created_at, gender, birth_year, region, preferred_channel, "
        "lifecycle_stage FROM c_df"
    ).fetchall()
    con.execute(
        "INSERT INTO orders (order_id, customer_id, ordered_at, status, channel, currency, total_amount) "
        "SELECT order_id, customer_id, ordered_at, status, 'online', 'CNY', total_amount FROM o_df"
    ).fetchall()


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[Any, Any]]:
    from rapport.analytics.spark import copy_tables, local_session

    con = duckdb.connect()
    _data(con)
    spark = local_session(cores=1, app_name="rapport-test")
    try:
        yield ibis.duckdb.from_connection(con), copy_tables(spark, con, ["customers", "orders"])
    finally:
        spark.stop()
        con.close()


def _normalise(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = pd.to_datetime(out[col]).dt.tz_localize(None).astype("datetime64[us]")
        elif pd.api.types.is_integer_dtype(out[col]):
            out[col] = out[col].astype("int64")
        elif pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].astype("float64")
        else:
            out[col] = out[col].astype(object)
    return out.sort_values(keys).reset_index(drop=True)


def _same(backends: tuple[Any, Any], build: Any, keys: list[str]) -> pd.DataFrame:
    duck, spark = backends
    a = _normalise(duck.execute(build(duck)), keys)
    b = _normalise(spark.execute(build(spark)), keys)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    return a


def test_rfm_is_identical(backends: tuple[Any, Any]) -> None:
    got = _same(backends, lambda be: metrics.rfm(be.table("orders"), AS_OF), ["customer_id"])
    assert len(got) > 250
    assert set(got["segment"]) >= {"champions", "lost", "at risk", "hibernating"}
    # Ties exist and share a score: every customer with one purchase has the same F.
    assert got.loc[got.frequency == 1, "f"].nunique() == 1


def test_rfm_summaries_are_identical(backends: tuple[Any, Any]) -> None:
    _same(backends, lambda be: metrics.rfm_segments(metrics.rfm(be.table("orders"), AS_OF)), ["segment"])
    grid = _same(
        backends, lambda be: metrics.rfm_grid(metrics.rfm(be.table("orders"), AS_OF, bins=4)), ["r", "f"]
    )
    assert grid["r"].max() == 4


def test_cohorts_are_identical(backends: tuple[Any, Any]) -> None:
    got = _same(backends, lambda be: metrics.cohorts(be.table("orders"), AS_OF), ["cohort", "period"])
    assert got["period"].max() > 12
    assert (got.loc[got.period == 0, "retention"] == 1.0).all()


def test_descriptive_tables_are_identical(backends: tuple[Any, Any]) -> None:
    for unit in ("month", "week"):
        _same(backends, lambda be, u=unit: metrics.revenue_series(be.table("orders"), AS_OF, u), ["period"])
    for by in metrics.BREAKDOWNS:
        _same(backends, lambda be, b=by: metrics.breakdown(be.table("customers"), b, AS_OF), ["key"])
    for of in ("frequency", "monetary", "recency"):
        _same(backends, lambda be, o=of: metrics.distribution(be.table("orders"), o, AS_OF), ["bucket"])
    _same(backends, lambda be: metrics.repeat_purchase(be.table("orders"), AS_OF), ["purchasers"])
