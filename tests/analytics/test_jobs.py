"""The runner: sync, jobs, result tables in DuckDB, scores written back to customer_score."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd
import pytest
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from rapport.analytics import store as store_mod
from rapport.analytics.descriptive import DescriptiveJob
from rapport.analytics.jobs import (
    AnalyticsJob,
    JobContext,
    JobResult,
    ScoreRow,
    registry,
    result_table_name,
    run_jobs,
    write_scores,
)
from rapport.analytics.rfm import RfmJob
from rapport.analytics.store import AnalyticsStore
from rapport.db import Database
from rapport.models import Customer, CustomerScore, Order
from rapport.models.base import utcnow
from tests.analytics.jobs_data import AS_OF, build
from tests.factories import Factory

RUN_AT = dt.datetime(2025, 7, 1, 3, tzinfo=dt.UTC)


@pytest.fixture
def store() -> Iterator[AnalyticsStore]:
    st = AnalyticsStore(duckdb.connect())
    yield st
    st.close()


def scores(db: Session) -> list[tuple[Any, ...]]:
    t = CustomerScore.__table__
    return [
        (r.customer_id, r.kind, r.value, r.label, r.details, r.model_version, r.computed_at)
        for r in db.execute(select(t).order_by(t.c.customer_id, t.c.kind))
    ]


def rfm_details(r: int, f: int, m: int, recency: int, frequency: int, monetary: float) -> dict[str, Any]:
    return {
        "r": r,
        "f": f,
        "m": m,
        "recency_days": recency,
        "frequency": frequency,
        "monetary": monetary,
        "bins": 5,
    }


def test_jobs_implement_the_protocol() -> None:
    assert isinstance(RfmJob(), AnalyticsJob)
    assert isinstance(DescriptiveJob(), AnalyticsJob)
    assert all(isinstance(job, AnalyticsJob) for job in registry().values())
    assert list(registry()) == [
        "rfm",
        "descriptive",
        "clv",
        "lifecycle",
        "churn",
        "rules",
        "forecast",
        "recommend",
        "clusters",
        "segments",
    ]


def test_run_writes_rfm_scores_and_result_tables(
    db: Session, database: Database, factory: Factory, store: AnalyticsStore
) -> None:
    ids = build(factory)
    report = run_jobs(database, store, as_of=AS_OF, only=["rfm", "descriptive"], now=RUN_AT)
    assert report.sync is not None and report.sync.upserted["customers"] == 4
    rfm = report.jobs[0]
    assert (rfm.job, rfm.scores_written, rfm.scores_withheld) == ("rfm", 3, 0)
    assert rfm.tables == ["result_rfm_customers", "result_rfm_segments", "result_rfm_grid"]
    assert scores(db) == [
        (ids["a"], "rfm", 442.0, "potential loyalists", rfm_details(4, 4, 2, 10, 2, 400.0), "rfm-1", RUN_AT),
        (ids["b"], "rfm", 111.0, "lost", rfm_details(1, 1, 1, 171, 1, 50.0), "rfm-1", RUN_AT),
        (ids["c"], "rfm", 214.0, "at risk", rfm_details(2, 1, 4, 60, 1, 1000.0), "rfm-1", RUN_AT),
    ]
    segments = store.con.execute(
        "SELECT segment, customers FROM result_rfm_segments ORDER BY segment"
    ).fetchall()
    assert segments == [("at risk", 1), ("lost", 1), ("potential loyalists", 1)]
    assert store.con.execute("SELECT repeat_rate FROM result_descriptive_repeat_purchase").fetchall() == [
        (0.333333,)
    ]
    runs = store.con.execute("SELECT job, model_version, scores FROM job_run ORDER BY job").fetchall()
    assert runs == [("descriptive", "descriptive-1", 0), ("rfm", "rfm-1", 3)]
    assert report.jobs[1].metrics["purchasers"] == 3.0


def test_second_run_updates_in_place_and_drops_stale_scores(
    db: Session, database: Database, factory: Factory, store: AnalyticsStore
) -> None:
    ids = build(factory)
    run_jobs(database, store, as_of=AS_OF, only=["rfm"], now=RUN_AT)
    # B's only purchase is refunded: B has no RFM score any more; A and C are re-ranked.
    db.execute(
        update(Order)
        .where(Order.customer_id == ids["b"])
        .values(status="refunded", updated_at=utcnow() + dt.timedelta(seconds=5))
    )
    later = RUN_AT + dt.timedelta(days=1)
    report = run_jobs(database, store, as_of=AS_OF, only=["rfm"], now=later)
    assert report.sync is not None and report.sync.upserted["orders"] == 1
    got = scores(db)
    assert [(r[0], r[2], r[3], r[6]) for r in got] == [
        # n = 2: ranks 0, 1 score 1, 3. A: r3 f3 m1, fm 2; C: r1 f1 m3, fm 2.
        (ids["a"], 331.0, "about to sleep", later),
        (ids["c"], 113.0, "lost", later),
    ]
    history = store.con.execute(
        "SELECT customer_id, value FROM score_history ORDER BY computed_at, customer_id"
    )
    assert history.fetchall() == [
        (ids["a"], 442.0),
        (ids["b"], 111.0),
        (ids["c"], 214.0),
        (ids["a"], 331.0),
        (ids["c"], 113.0),
    ]


def test_scores_only_for_customers_allowing_profiling(
    db: Session, database: Database, factory: Factory, store: AnalyticsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = build(factory)

    def without_c(session: Session) -> Select[Any]:
        return select(Customer.id).where(Customer.id != ids["c"])

    monkeypatch.setattr(store_mod, "profiling_allowed_ids", without_c)
    report = run_jobs(database, store, as_of=AS_OF, only=["rfm"], now=RUN_AT)
    assert (report.jobs[0].scores_written, report.jobs[0].scores_withheld) == (2, 1)
    assert [r[0] for r in scores(db)] == [ids["a"], ids["b"]]
    # The aggregate still counts C: objecting to profiling does not remove a purchase from revenue.
    assert store.con.execute("SELECT count(*) FROM result_rfm_customers").fetchall() == [(3,)]


class SegmentJob:
    name = "segments"
    model_version = "seg-test"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        ctx.progress(0.5, "half")
        ids = [int(r[0]) for r in con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchall()]
        return JobResult(
            scores=[ScoreRow(i, "segment:7", 1.0, "vip", None) for i in ids],
            tables={"members": pd.DataFrame({"customer_id": ids})},
            metrics={"members": float(len(ids))},
        )


def test_any_job_following_the_protocol_runs(
    db: Session, database: Database, factory: Factory, store: AnalyticsStore
) -> None:
    ids = build(factory)
    seen: list[tuple[str, float, str]] = []
    report = run_jobs(
        database,
        store,
        as_of=AS_OF,
        jobs={"segments": SegmentJob()},
        now=RUN_AT,
        progress=lambda job, done, note: seen.append((job, done, note)),
    )
    assert report.jobs[0].scores_written == 4
    assert ("segments", 0.5, "half") in seen
    assert seen[-1] == ("segments", 1.0, "4 scores")
    assert store.con.execute("SELECT count(*) FROM result_segments_members").fetchall() == [(4,)]
    assert {r[0] for r in scores(db)} == set(ids.values())
    with pytest.raises(ValueError, match="unknown job"):
        run_jobs(database, store, as_of=AS_OF, only=["nope"])
    with pytest.raises(ValueError, match="invalid job or table name"):
        result_table_name("rfm", "x; DROP TABLE orders")


def test_write_scores_upserts_in_batches(db: Session, factory: Factory) -> None:
    ids = [factory.customer() for _ in range(5)]
    rows = [ScoreRow(i, "clv_12m", float(n), None, {"n": n}) for n, i in enumerate(ids)]
    assert (
        write_scores(db, rows, model_version="v1", computed_at=RUN_AT, kinds=["clv_12m"], batch_size=2) == 5
    )
    again = [ScoreRow(ids[0], "clv_12m", 99.5, "top", None)]
    later = RUN_AT + dt.timedelta(hours=1)
    write_scores(db, again, model_version="v2", computed_at=later, kinds=["clv_12m"])
    assert [(r[0], r[2], r[3], r[5]) for r in scores(db)] == [(ids[0], 99.5, "top", "v2")]
