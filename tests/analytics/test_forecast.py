from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from rapport.analytics.forecast import (
    ForecastJob,
    backtest,
    fit_forecast,
    forecast_table,
    period_series,
    seasonal_naive,
)
from rapport.analytics.jobs import JobContext
from rapport.analytics.synthetic import seasonal_series
from tests.analytics.store_tables import Store


def test_seasonal_naive_by_hand() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 2.0, 3.0, 4.0, 5.0])
    fc = seasonal_naive(y, horizon=6, period=4, level=0.8)
    assert fc.model == "seasonal_naive"
    assert fc.mean.tolist() == [2.0, 3.0, 4.0, 5.0, 2.0, 3.0]
    sigma = 1.0  # every seasonal difference is exactly 1
    z = norm.ppf(0.9)
    half = fc.upper - fc.mean
    np.testing.assert_allclose(half, z * sigma * np.sqrt([1, 1, 1, 1, 2, 2]))
    np.testing.assert_allclose(fc.mean - fc.lower, half)
    short = seasonal_naive(np.array([5.0, 7.0]), horizon=2, period=12)
    assert short.model == "naive" and short.mean.tolist() == [7.0, 7.0]


def test_monthly_forecast_beats_seasonal_naive_and_covers_nominally() -> None:
    y = seasonal_series(np.random.default_rng(0), 96)
    ours = backtest(y, 3, 12, folds=24, level=0.8)
    naive = backtest(y, 3, 12, folds=24, level=0.8, forecaster=seasonal_naive)
    assert ours.points == naive.points == 72 and ours.folds == 24
    assert ours.mase < 0.5 * naive.mase
    assert ours.smape < 0.5 * naive.smape
    assert ours.mape < 0.5 * naive.mape
    assert 0.65 <= ours.coverage <= 0.95  # nominal 0.8 on 72 points
    fc = fit_forecast(y, 6, 12, 0.8)
    assert fc.model.startswith("ETS(A,A") and fc.model.endswith(",A)")  # trend and season found


def test_weekly_forecast_with_a_52_week_season() -> None:
    y = seasonal_series(np.random.default_rng(1), 160, period=52, trend=3, noise=60)
    ours = backtest(y, 13, 52, folds=12, level=0.8)
    naive = backtest(y, 13, 52, folds=12, level=0.8, forecaster=seasonal_naive)
    assert ours.mase < 0.5 * naive.mase
    assert 0.65 <= ours.coverage <= 0.95
    assert fit_forecast(y, 13, 52, 0.8).model.startswith("Fourier+ETS")


def test_intervals_widen_with_the_horizon_and_bracket_the_mean() -> None:
    y = seasonal_series(np.random.default_rng(2), 60)
    fc = fit_forecast(y, 12, 12, 0.9)
    width = fc.upper - fc.lower
    assert np.all(fc.lower < fc.mean) and np.all(fc.mean < fc.upper)
    assert np.all(np.diff(width) > 0)


def test_flat_or_tiny_series_fall_back_to_naive() -> None:
    assert fit_forecast(np.full(30, 5.0), 3, 12).mean.tolist() == [5.0, 5.0, 5.0]
    assert fit_forecast(np.array([1.0, 2.0, 3.0]), 2, 12).model == "naive"


def test_backtest_needs_enough_points() -> None:
    with pytest.raises(ValueError, match="needs more than"):
        backtest(np.arange(10.0), 6, 12, folds=5)


def test_period_series_drops_the_partial_period_and_fills_gaps() -> None:
    when = pd.Series(pd.to_datetime(["2025-01-15", "2025-01-20", "2025-03-02", "2025-04-10"]))
    amounts = pd.Series([10.0, 5.0, 7.0, 100.0])
    starts, revenue, counts = period_series(when, amounts, "month", pd.Timestamp("2025-04-20"))
    assert [s.strftime("%Y-%m-%d") for s in starts] == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert revenue.tolist() == [15.0, 0.0, 7.0] and counts.tolist() == [2.0, 0.0, 1.0]
    # At the very end of April, April is complete.
    _, revenue, _ = period_series(when, amounts, "month", pd.Timestamp("2025-04-30 23:59:59.999999"))
    assert revenue.tolist() == [15.0, 0.0, 7.0, 100.0]
    # Weeks run Monday to Sunday: 2025-01-15 is a Wednesday, in the week of Monday 2025-01-13.
    starts, revenue, _ = period_series(when[:2], amounts[:2], "week", pd.Timestamp("2025-01-27"))
    assert [s.strftime("%Y-%m-%d") for s in starts] == ["2025-01-13", "2025-01-20"]
    assert revenue.tolist() == [10.0, 5.0]


def test_forecast_table_rows() -> None:
    y = seasonal_series(np.random.default_rng(3), 36)
    starts = pd.DatetimeIndex(pd.date_range("2022-01-01", periods=36, freq="MS"))
    fc = fit_forecast(y, 4, 12, 0.9)
    table = forecast_table(starts, y, fc, "month")
    assert len(table) == 40
    assert table["kind"].value_counts().to_dict() == {"history": 36, "forecast": 4}
    future = table[table["kind"] == "forecast"]
    assert [d.strftime("%Y-%m-%d") for d in future["period_start"]] == [
        "2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01",
    ]  # fmt: skip
    assert table["lower"].head(36).isna().all() and not future["lower"].isna().any()
    assert table["value"].head(36).tolist() == y.tolist()


def test_forecast_job_on_the_store() -> None:
    store = Store()
    store.customers([(1, "east", "web", True)])
    store.products([(1, "tea", 10.0, True)])
    rng = np.random.default_rng(4)
    monthly = seasonal_series(rng, 40, level=50, trend=1, amplitude=15, noise=3).round().astype(int)
    rows = []
    for month, n_orders in enumerate(monthly):
        first = (pd.Timestamp("2022-01-01") + pd.DateOffset(months=month)).to_pydatetime()
        rows.extend(
            (len(rows) + 1, 1, first + dt.timedelta(hours=6 * j), "paid", 1) for j in range(int(n_orders))
        )
    store.orders_bulk(rows)  # 10.0 each
    order_id = len(rows)
    store.order(order_id + 1, 1, dt.datetime(2023, 5, 5), [1], total=1e9, status="cancelled")
    store.order(order_id + 2, 1, dt.datetime(2023, 5, 5), [1], total=1e9, currency="USD")
    as_of = dt.datetime(2025, 4, 15)  # April 2025 (month 39) is partial: history ends in March
    result = ForecastJob().run(store.con, JobContext(as_of=as_of, params={"level": 0.8}))
    revenue = result.tables["revenue_month"]
    history = revenue[revenue["kind"] == "history"]
    assert len(history) == 39
    assert history["value"].tolist() == [10.0 * n for n in monthly[:39]]  # no cancelled, no USD
    assert result.metrics["orders_other_currency"] == 1.0
    assert len(revenue[revenue["kind"] == "forecast"]) == 6
    orders = result.tables["orders_month"]
    assert orders[orders["kind"] == "history"]["value"].tolist() == [float(n) for n in monthly[:39]]
    assert set(result.tables) == {"revenue_month", "orders_month", "revenue_week", "orders_week", "backtest"}
    bt = result.tables["backtest"]
    monthly_rows = bt[bt["series"] == "orders_month"].set_index("role")
    assert set(monthly_rows.index) == {"model", "seasonal_naive"}
    assert monthly_rows.loc["model", "mase"] < monthly_rows.loc["seasonal_naive", "mase"]
    assert result.metrics["orders_month.model.mase"] == monthly_rows.loc["model", "mase"]
    assert math.isfinite(result.metrics["revenue_week.model.coverage"])
