from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from rapport.analytics.jobs import JobContext, JobResult
from rapport.analytics.lifecycle import LifecycleJob, Thresholds
from tests.analytics.store_helpers import make_store

D = dt.datetime
AS_OF = D(2025, 7, 1, tzinfo=dt.UTC)
LATER = D(2025, 10, 1, tzinfo=dt.UTC)


def _monthly(
    cid: int, start: dt.datetime, count: int, margin: float
) -> list[tuple[int, dt.datetime, str, float, float]]:
    return [(cid, start + dt.timedelta(days=30 * k), "completed", 100.0, margin) for k in range(count)]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    customers = [{"customer_id": i} for i in range(1, 7)] + [{"customer_id": 7, "profiling_allowed": False}]
    orders = [
        (2, D(2025, 6, 1), "paid", 50.0, 5.0),  # new: first purchase 30 days ago
        *_monthly(3, D(2024, 6, 20), 13, 80.0),  # active: every 30 days up to 2025-06-15, 16 days ago
        *_monthly(4, D(2024, 7, 4), 9, 10.0),  # declining: every 30 days up to 2025-03-01, 122 days ago
        (5, D(2024, 5, 1), "shipped", 30.0, 3.0),  # churned: 426 days ago
        (5, D(2024, 5, 1, 18), "paid", 30.0, 3.0),  # same day: one purchase day
        (6, D(2023, 1, 1), "paid", 20.0, 2.0),
        (6, D(2023, 2, 1), "paid", 20.0, 2.0),
        (6, D(2025, 5, 1), "paid", 20.0, 2.0),  # won back after 819 days, 61 days ago
        (6, D(2025, 6, 1), "cancelled", 20.0, 2.0),  # not a purchase
        (7, D(2025, 6, 1), "paid", 20.0, 2.0),  # may not be profiled
    ]
    return make_store(customers, orders)


def _store_tables(con: duckdb.DuckDBPyConnection, result: JobResult) -> None:
    """What the runner does with a job's tables: result_<job>_<name>, replaced each run."""
    for name, frame in result.tables.items():
        con.register("frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE result_lifecycle_{name} AS SELECT * FROM frame")
        con.unregister("frame")


def test_stages_follow_the_documented_rules(con: duckdb.DuckDBPyConnection) -> None:
    result = LifecycleJob().run(con, JobContext(as_of=AS_OF))
    got = {s.customer_id: (s.label, s.value) for s in result.scores}
    assert got == {
        1: ("potential", None),
        2: ("new", pytest.approx(30 / 365, abs=1e-6)),
        3: ("active", pytest.approx(16 / 365, abs=1e-6)),
        4: ("declining", pytest.approx(122 / 365, abs=1e-6)),
        5: ("churned", 1.0),
        6: ("won_back", pytest.approx(61 / 365, abs=1e-6)),
    }
    assert result.metrics["p_alive_model"] == 0.0  # too few repeat buyers for BG/NBD
    details = {s.customer_id: s.details for s in result.scores}
    assert details[1] is None
    assert details[4] == {"days_since_last": 122, "p_alive": None}
    # First run: every customer's first stage is a transition from nothing; no early warnings yet.
    transitions = result.tables["transitions"]
    assert transitions["customer_id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert transitions["from_stage"].isna().all()
    assert result.tables["early_warning"].empty


def test_thresholds_change_the_stages(con: duckdb.DuckDBPyConnection) -> None:
    params = {"churn_days": 100, "new_days": 10}
    result = LifecycleJob().run(con, JobContext(as_of=AS_OF, params=params))
    got = {s.customer_id: s.label for s in result.scores}
    # 122 days without purchase is now churned; customer 2 is past "new" and bought once 30 days
    # ago, within 2 x the population's median gap (30): active.
    assert got == {1: "potential", 2: "active", 3: "active", 4: "churned", 5: "churned", 6: "won_back"}
    assert Thresholds.from_params(params) == Thresholds(churn_days=100, new_days=10)


def test_second_run_records_transitions_and_warns_about_valuable_customers(
    con: duckdb.DuckDBPyConnection,
) -> None:
    first = LifecycleJob().run(con, JobContext(as_of=AS_OF))
    _store_tables(con, first)
    # Customer 5 comes back; nobody else buys.
    con.execute(
        "INSERT INTO orders VALUES (100, 5, TIMESTAMP '2025-09-01 10:00', 'paid', 'web', 'CNY', 40, 4)"
    )
    second = LifecycleJob().run(con, JobContext(as_of=LATER))
    got = {s.customer_id: s.label for s in second.scores}
    # Customer 2 (one purchase, 122 days ago) is within 2 x the population's median gap (median of
    # 30, 30, 425 and 488 days); customer 6 returned 153 days ago, still within won_back_days (180).
    assert got == {1: "potential", 2: "active", 3: "declining", 4: "declining", 5: "won_back", 6: "won_back"}
    transitions = second.tables["transitions"]
    latest = transitions[transitions["at"] == pd.Timestamp(LATER.replace(tzinfo=None))]
    assert sorted(zip(latest["customer_id"], latest["from_stage"], latest["to_stage"], strict=True)) == [
        (2, "new", "active"),
        (3, "active", "declining"),
        (5, "churned", "won_back"),
    ]
    assert len(transitions) == 6 + 3  # the first run's history is kept
    # Customer 3 has the largest margin (13 x 80) and slipped from active to declining: warned.
    # Customer 4's risk rose too (122 -> 214 days) but its margin (90) is not in the top 20%.
    warning = second.tables["early_warning"]
    assert warning["customer_id"].tolist() == [3]
    assert warning["stage_before"].tolist() == ["active"]
    assert warning["risk_before"].iloc[0] == pytest.approx(16 / 365)
    assert warning["risk_now"].iloc[0] == pytest.approx(108 / 365)
    # Running the same date again replaces that date's transitions instead of duplicating them.
    _store_tables(con, second)
    again = LifecycleJob().run(con, JobContext(as_of=LATER))

    def rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
        return list(
            zip(
                frame["customer_id"],
                frame["from_stage"].fillna("-"),
                frame["to_stage"],
                frame["at"],
                strict=True,
            )
        )

    assert rows(again.tables["transitions"]) == rows(transitions)
    assert again.tables["early_warning"]["customer_id"].tolist() == [3]


def test_with_a_fitted_model_p_alive_drives_the_rules() -> None:
    import numpy as np

    from rapport.analytics.simulate import simulate_transactions

    ids, dates, amounts = simulate_transactions(
        np.random.default_rng(4), 400, end=np.datetime64("2025-06-30"), window_days=500,
        bgnbd=(0.8, 30.0, 0.9, 3.0), gamma_gamma=(4.0, 5.0, 60.0),
    )  # fmt: skip
    orders = [
        (int(c) + 1, D.fromisoformat(str(d)), "paid", float(a), round(float(a) / 4, 2))
        for c, d, a in zip(ids, dates, amounts, strict=True)
    ]
    con = make_store([{"customer_id": i} for i in range(1, 401)], orders)
    result = LifecycleJob().run(con, JobContext(as_of=AS_OF))
    assert result.metrics["p_alive_model"] == 1.0
    stages = result.tables["stages"].set_index("customer_id")
    assert stages["stage"].value_counts().sum() == 400
    with_p = stages[stages["p_alive"].notna()]
    assert len(with_p) == 400  # every customer bought at least once
    # The documented rules, checked on every customer.
    assert (with_p.loc[with_p["p_alive"] < 0.15, "stage"] == "churned").all()
    assert (with_p.loc[with_p["days_since_last"] >= 365, "stage"] == "churned").all()
    declining = with_p[with_p["stage"] == "declining"]
    assert len(declining) > 0
    assert (declining["p_alive"] >= 0.15).all()
    active = with_p[with_p["stage"] == "active"]
    assert (active["p_alive"] >= 0.5).all()
    assert (stages["risk"] >= 1 - stages["p_alive"] - 1e-12).all()
    assert {"new", "active", "declining", "churned"} <= set(stages["stage"])
