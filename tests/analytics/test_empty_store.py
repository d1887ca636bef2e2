from __future__ import annotations

import datetime as dt

from rapport.analytics.forecast import ForecastJob
from rapport.analytics.jobs import JobContext
from rapport.analytics.recommend_job import RecommendJob
from rapport.analytics.rules import RulesJob
from tests.analytics.store_tables import Store

CTX = JobContext(as_of=dt.datetime(2025, 6, 1))


def test_jobs_on_an_empty_store() -> None:
    store = Store()
    assert RecommendJob().run(store.con, CTX).scores == []
    rules = RulesJob().run(store.con, CTX)
    assert rules.metrics == {"baskets": 0.0, "itemsets": 0.0, "rules": 0.0}
    assert len(rules.tables["rules"]) == 0 and len(rules.tables["also_bought"]) == 0
    forecast = ForecastJob().run(store.con, CTX)
    assert set(forecast.tables) == {"backtest"} and len(forecast.tables["backtest"]) == 0


def test_catalogue_and_customers_without_orders() -> None:
    store = Store()
    store.customers([(1, "east", "web", True), (2, None, None, False)])
    store.products([(10, "tea", 5.0, True), (11, "cups", 20.0, True), (12, "pots", 50.0, False)])
    result = RecommendJob().run(store.con, JobContext(as_of=dt.datetime(2025, 6, 1), params={"k": 3}))
    [row] = result.scores
    assert row.customer_id == 1 and row.label == "cold_start"
    assert row.details is not None and row.details["products"] == [10, 11]  # inactive 12 never
    assert "evaluation" not in result.tables


def test_a_few_orders_are_not_enough_for_a_backtest() -> None:
    store = Store()
    store.customers([(1, "east", "web", True)])
    store.products([(10, "tea", 5.0, True)])
    store.order(1, 1, dt.datetime(2025, 3, 3), [10], total=50.0)
    store.order(2, 1, dt.datetime(2025, 4, 9), [10], total=70.0)
    result = ForecastJob().run(store.con, CTX)
    history = result.tables["revenue_month"]
    # May had no orders and is complete on 1 June: a zero, not a gap.
    assert history[history["kind"] == "history"]["value"].tolist() == [50.0, 70.0, 0.0]
    assert len(history[history["kind"] == "forecast"]) == 6
    assert len(result.tables["backtest"]) == 0


def test_jobs_report_progress_up_to_done() -> None:
    seen: list[tuple[str, float]] = []
    ctx = JobContext(
        as_of=dt.datetime(2025, 6, 1), progress=lambda fraction, message: seen.append((message, fraction))
    )
    store = Store()
    for job in (RecommendJob(), RulesJob(), ForecastJob()):
        job.run(store.con, ctx)
    assert [m for m, f in seen if f == 1.0] == ["recommend: done", "rules: done", "forecast: done"]
    assert all(0.0 <= f <= 1.0 for _, f in seen)
