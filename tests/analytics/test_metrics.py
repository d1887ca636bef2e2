"""Exact metric values on the hand-built store of tests/analytics/store_data.py (DuckDB)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import ibis
import pytest

from rapport.analytics import metrics
from tests.analytics.store_data import AS_OF, build


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return build()


@pytest.fixture(scope="module")
def backend(con: duckdb.DuckDBPyConnection) -> Any:
    return ibis.duckdb.from_connection(con)


def rows(backend: Any, expr: Any) -> list[tuple[Any, ...]]:
    frame = backend.execute(expr)
    return [tuple(r) for r in frame.itertuples(index=False)]


def test_rfm_scores_and_segments(backend: Any) -> None:
    scored = backend.execute(metrics.rfm(backend.table("orders"), AS_OF))
    got = scored[["customer_id", "recency_days", "frequency", "monetary", "r", "f", "m", "fm", "segment"]]
    assert [tuple(r) for r in got.itertuples(index=False)] == [
        (1, 0, 3, 350.30, 5, 5, 4, 5, "champions"),
        (2, 140, 1, 50.00, 2, 1, 1, 1, "hibernating"),
        (3, 121, 1, 1000.00, 3, 1, 5, 3, "need attention"),
        (4, 46, 1, 300.00, 4, 1, 3, 2, "potential loyalists"),
        # c6 and c7 differ in recency yet share R = 1: floor(rank * 5 / 6) + 1 for ranks 0 and 1.
        (6, 161, 2, 160.00, 1, 4, 2, 3, "at risk"),
        (7, 171, 1, 40.00, 1, 1, 1, 1, "lost"),
    ]


def test_rfm_three_bins(backend: Any) -> None:
    scored = backend.execute(metrics.rfm(backend.table("orders"), AS_OF, bins=3))
    # score = floor(rank * 3 / 6) + 1: ranks 0,1 -> 1; 2,3 -> 2; 4,5 -> 3 (F ties all rank 0).
    assert list(scored["r"]) == [3, 2, 2, 3, 1, 1]
    assert list(scored["f"]) == [3, 1, 1, 1, 3, 1]
    assert list(scored["m"]) == [3, 1, 3, 2, 2, 1]
    # Rescaled to 1..5 with ceil(s * 5 / 3): 1 -> 2, 2 -> 4, 3 -> 5.
    assert scored.loc[scored.customer_id == 1, "segment"].item() == "champions"
    assert scored.loc[scored.customer_id == 7, "segment"].item() == "hibernating"


def test_rfm_rejects_bad_bins(backend: Any) -> None:
    with pytest.raises(ValueError, match="between 2 and 10"):
        metrics.rfm(backend.table("orders"), AS_OF, bins=1)


def test_rfm_as_of_an_earlier_day_ignores_later_orders(backend: Any) -> None:
    scored = backend.execute(metrics.rfm(backend.table("orders"), dt.date(2025, 1, 31)))
    assert list(scored["customer_id"]) == [1, 6, 7]
    assert list(scored["frequency"]) == [1, 2, 1]
    assert list(scored["recency_days"]) == [26, 11, 21]


@pytest.mark.parametrize(
    ("r", "f", "m", "segment"),
    [
        (5, 5, 5, "champions"),
        (4, 4, 4, "champions"),
        (1, 5, 4, "cannot lose them"),
        (2, 5, 5, "at risk"),
        (1, 3, 3, "at risk"),
        (3, 4, 4, "loyal"),
        (5, 1, 5, "new customers"),
        (5, 1, 1, "new customers"),
        (4, 2, 2, "potential loyalists"),
        (4, 1, 1, "promising"),
        (3, 3, 3, "need attention"),
        (3, 1, 2, "about to sleep"),
        (2, 2, 2, "hibernating"),
        (1, 1, 2, "lost"),
    ],
)
def test_segment_rules(r: int, f: int, m: int, segment: str) -> None:
    assert metrics.segment_of(r, f, m) == segment


def test_every_score_combination_has_a_listed_segment(backend: Any) -> None:
    combos = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    names = {metrics.segment_of(*c) for c in combos}
    assert names == set(metrics.RFM_SEGMENTS)
    # The Ibis expression applies the same rules as the Python function.
    t = ibis.memtable({"r": [c[0] for c in combos], "f": [c[1] for c in combos], "m": [c[2] for c in combos]})
    fm = (t.f + t.m + 1) // 2
    got = backend.execute(t.mutate(segment=metrics.segment_expr(t.r, t.f, fm)))
    assert list(got["segment"]) == [metrics.segment_of(*c) for c in combos]


def test_rfm_segment_summary_and_grid(backend: Any) -> None:
    scored = metrics.rfm(backend.table("orders"), AS_OF)
    assert rows(backend, metrics.rfm_segments(scored)) == [
        ("at risk", 1, 161.0, 2.0, 160.0, 160.0, 0.166667),
        ("champions", 1, 0.0, 3.0, 350.3, 350.3, 0.166667),
        ("hibernating", 1, 140.0, 1.0, 50.0, 50.0, 0.166667),
        ("lost", 1, 171.0, 1.0, 40.0, 40.0, 0.166667),
        ("need attention", 1, 121.0, 1.0, 1000.0, 1000.0, 0.166667),
        ("potential loyalists", 1, 46.0, 1.0, 300.0, 300.0, 0.166667),
    ]
    assert rows(backend, metrics.rfm_grid(scored)) == [
        (1, 1, 1, 40.0),
        (1, 4, 1, 160.0),
        (2, 1, 1, 50.0),
        (3, 1, 1, 1000.0),
        (4, 1, 1, 300.0),
        (5, 5, 1, 350.3),
    ]


def test_breakdowns(backend: Any) -> None:
    c = backend.table("customers")
    # c5 was created after as_of and is not counted.
    assert rows(backend, metrics.breakdown(c, "gender", AS_OF)) == [
        ("female", 3, 0.5),
        ("male", 2, 0.333333),
        ("unknown", 1, 0.166667),
    ]
    assert rows(backend, metrics.breakdown(c, "age_band", AS_OF)) == [
        ("25-34", 1, 0.166667),
        ("35-44", 1, 0.166667),
        ("45-54", 1, 0.166667),
        ("65+", 1, 0.166667),
        ("under 18", 1, 0.166667),
        ("unknown", 1, 0.166667),
    ]
    assert rows(backend, metrics.breakdown(c, "region", AS_OF)) == [
        ("East", 3, 0.5),
        ("North", 2, 0.333333),
        ("=cmd", 1, 0.166667),
    ]
    assert rows(backend, metrics.breakdown(c, "channel", AS_OF)) == [
        ("email", 3, 0.5),
        ("sms", 2, 0.333333),
        ("unknown", 1, 0.166667),
    ]
    assert rows(backend, metrics.breakdown(c, "stage", AS_OF)) == [
        ("customer", 4, 0.666667),
        ("lead", 1, 0.166667),
        ("loyal", 1, 0.166667),
    ]
    with pytest.raises(ValueError, match="unknown breakdown"):
        metrics.breakdown(c, "shoe_size", AS_OF)


def test_distributions_and_repeat_rate(backend: Any) -> None:
    o = backend.table("orders")
    assert rows(backend, metrics.distribution(o, "frequency", AS_OF)) == [
        ("1", 4, 0.666667),
        ("2", 1, 0.166667),
        ("3", 1, 0.166667),
    ]
    assert rows(backend, metrics.distribution(o, "monetary", AS_OF)) == [
        ("0-100", 2, 0.333333),
        ("100-500", 3, 0.5),
        ("1000-2000", 1, 0.166667),
    ]
    assert rows(backend, metrics.distribution(o, "recency", AS_OF)) == [
        ("0-30 days", 1, 0.166667),
        ("31-90 days", 1, 0.166667),
        ("91-180 days", 4, 0.666667),
    ]
    assert rows(backend, metrics.repeat_purchase(o, AS_OF)) == [(6, 2, 0.333333)]


def test_cohort_retention(backend: Any) -> None:
    assert rows(backend, metrics.cohorts(backend.table("orders"), AS_OF)) == [
        ("2024-12", 0, 1, 1, 1.0),
        ("2024-12", 1, 1, 1, 1.0),
        ("2025-01", 0, 2, 2, 1.0),  # c1 and c7
        ("2025-01", 2, 2, 1, 0.5),  # c1 again in March
        ("2025-01", 5, 2, 1, 0.5),  # and in June
        ("2025-02", 0, 1, 1, 1.0),
        ("2025-03", 0, 1, 1, 1.0),
        ("2025-05", 0, 1, 1, 1.0),
    ]


def series(backend: Any, expr: Any) -> list[tuple[Any, ...]]:
    return [(r[0].date(), *r[1:]) for r in rows(backend, expr)]


def test_revenue_series(backend: Any) -> None:
    o = backend.table("orders")
    assert series(backend, metrics.revenue_series(o, AS_OF, "month")) == [
        (dt.date(2024, 12, 1), 80.0, 1, 1),
        (dt.date(2025, 1, 1), 220.1, 3, 3),
        (dt.date(2025, 2, 1), 50.0, 1, 1),
        (dt.date(2025, 3, 1), 1200.2, 2, 2),
        (dt.date(2025, 5, 1), 300.0, 1, 1),
        (dt.date(2025, 6, 1), 50.0, 1, 1),
    ]
    weekly = series(backend, metrics.revenue_series(o, AS_OF, "week"))
    # Weeks start on Monday: 2025-06-30 is one, 2025-01-05 (a Sunday) belongs to 2024-12-30.
    assert weekly[0] == (dt.date(2024, 12, 16), 80.0, 1, 1)
    assert weekly[1] == (dt.date(2024, 12, 30), 100.1, 1, 1)
    assert weekly[-1] == (dt.date(2025, 6, 30), 50.0, 1, 1)
    assert [w[0].isoformat() for w in weekly[2:-1]] == [
        "2025-01-06",
        "2025-01-20",
        "2025-02-10",
        "2025-02-24",
        "2025-03-03",
        "2025-05-12",
    ]
