from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from rapport.analytics.clv import clv, fit_bgnbd, fit_gamma_gamma, prob_alive, summarise
from rapport.analytics.customer_value import ClvJob, historical_clv
from rapport.analytics.jobs import JobContext, ScoreRow
from rapport.analytics.simulate import simulate_transactions
from tests.analytics.store_helpers import make_store

AS_OF = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
D = dt.datetime


def _hand_made() -> tuple[list[dict[str, object]], list[tuple[int, dt.datetime, str, float, float]]]:
    customers: list[dict[str, object]] = [
        {"customer_id": 1},
        {"customer_id": 2},
        {"customer_id": 3, "profiling_allowed": False},
        {"customer_id": 4},  # never bought
    ]
    orders = [
        (1, D(2025, 1, 5, 10), "paid", 100.0, 30.0),
        (1, D(2025, 2, 5, 10), "completed", 50.0, 12.5),
        (1, D(2025, 3, 5, 10), "cancelled", 999.0, 500.0),  # not a purchase
        (1, D(2025, 3, 6, 10), "refunded", 80.0, 20.0),  # not a purchase
        (1, D(2025, 7, 2, 10), "paid", 70.0, 7.0),  # after as_of
        (2, D(2025, 6, 30, 23, 59), "shipped", 40.0, 10.0),
        (2, D(2025, 6, 1), "pending", 40.0, 10.0),  # not a purchase
        (3, D(2025, 2, 1), "paid", 500.0, 200.0),  # may not be profiled
    ]
    return customers, orders


def _scores(rows: list[ScoreRow], kind: str) -> dict[int, ScoreRow]:
    return {r.customer_id: r for r in rows if r.kind == kind}


def test_historical_clv_sums_margins_of_purchases_before_as_of() -> None:
    customers, orders = _hand_made()
    con = make_store(customers, orders)
    table = historical_clv(con, AS_OF)
    assert table["customer_id"].tolist() == [1, 2, 4]
    assert table["orders"].tolist() == [2, 1, 0]
    assert table["revenue"].tolist() == [150.0, 40.0, 0.0]
    assert table["margin"].tolist() == [42.5, 10.0, 0.0]
    assert table["avg_order_margin"].tolist()[:2] == [21.25, 10.0]
    assert np.isnan(table["avg_order_margin"].iloc[2])


def test_clv_job_without_enough_data_writes_only_historical_scores() -> None:
    customers, orders = _hand_made()
    result = ClvJob().run(make_store(customers, orders), JobContext(as_of=AS_OF))
    assert {r.kind for r in result.scores} == {"historical_clv"}
    hist = _scores(result.scores, "historical_clv")
    assert sorted(hist) == [1, 2, 4]
    assert hist[1].value == 42.5
    assert hist[1].details == {"orders": 2, "revenue": 150.0, "avg_order_margin": 21.25}
    assert hist[4].details == {"orders": 0, "revenue": 0.0, "avg_order_margin": None}
    assert result.metrics["model_fitted"] == 0.0
    assert result.metrics["historical_margin_total"] == 52.5


@pytest.fixture(scope="module")
def simulated_store() -> tuple[object, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    ids, dates, amounts = simulate_transactions(
        rng, 600, end=np.datetime64("2025-06-30"), window_days=365, bgnbd=(0.8, 25.0, 0.7, 5.0),
        gamma_gamma=(4.0, 5.0, 60.0),
    )  # fmt: skip
    ids = ids + 1
    customers = [{"customer_id": int(i)} for i in range(1, 602)]
    customers.append({"customer_id": 9999, "profiling_allowed": False})
    orders = [
        (int(c), D.fromisoformat(str(d)) + dt.timedelta(hours=9), "paid", float(a), round(float(a) * 0.3, 2))
        for c, d, a in zip(ids, dates, amounts, strict=True)
    ]
    orders.append((9999, D(2025, 3, 1), "paid", 10.0, 3.0))
    return make_store(customers, orders), ids, dates, amounts


def test_clv_job_scores_match_the_library_on_the_same_purchases(
    simulated_store: tuple[object, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    con, ids, dates, amounts = simulated_store
    result = ClvJob().run(con, JobContext(as_of=AS_OF, params={"time_unit": "week"}))  # type: ignore[arg-type]
    summary = summarise(ids, dates, amounts, dt.date(2025, 6, 30), "week")
    bg, gg = fit_bgnbd(summary), fit_gamma_gamma(summary)
    expected = clv(bg, gg, summary.frequency, summary.recency, summary.T, summary.monetary, time_unit="week")
    alive = prob_alive(bg, summary.frequency, summary.recency, summary.T)
    got = _scores(result.scores, "clv_12m")
    assert sorted(got) == summary.customer_ids.tolist()
    for i, cid in enumerate(summary.customer_ids.tolist()):
        assert got[cid].value == pytest.approx(expected[i], abs=1e-6)
    p_alive = _scores(result.scores, "p_alive")
    assert [p_alive[c].value for c in summary.customer_ids.tolist()] == pytest.approx(alive, abs=1e-6)
    assert len(_scores(result.scores, "expected_purchases_12m")) == len(summary)
    assert result.metrics["r"] == pytest.approx(bg.r, rel=1e-9)
    assert result.metrics["model_fitted"] == 1.0
    # Customer 601 never bought: historical 0, no model scores; 9999 may not be profiled: nothing.
    assert 601 not in got
    assert _scores(result.scores, "historical_clv")[601].value == 0.0
    assert all(r.customer_id != 9999 for r in result.scores)
    assert list(result.tables["params"].columns)[:7] == ["r", "alpha", "a", "b", "p", "q", "gamma"]
