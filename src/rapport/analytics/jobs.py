"""Analytics jobs: the protocol every compute module implements, the registry and the runner.

The runner syncs the store, runs the selected jobs over its DuckDB connection, stores each job's
report tables back in DuckDB as ``result_<job>_<name>`` (with a ``job_run`` row per run) and
writes the per-customer scores to the records table ``customer_score`` in batches (upsert on
``(customer_id, kind)``; scores of a kind the run no longer produced for a customer are removed).
Every score also goes to the store's ``score_history`` table, so earlier runs stay comparable.

Scores are automated evaluations of a person, so the runner keeps only those of customers whose
``profiling_allowed`` is true in the store, whatever the job returned.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import duckdb
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from rapport.analytics.store import AnalyticsStore, SyncReport
from rapport.db import Database
from rapport.models import CustomerScore, Segment
from rapport.models.base import table_of, utcnow


@dataclass(frozen=True)
class ScoreRow:
    """One score written back to the records table ``customer_score``."""

    customer_id: int
    kind: str  # "rfm", "clv_12m", "p_alive", "churn_risk", "lifecycle", "cluster", "segment:<id>"
    value: float | None
    label: str | None  # RFM segment name, lifecycle stage, cluster name
    details: dict[str, Any] | None  # {"r": 5, "f": 4, "m": 3}, churn reasons...


def _no_progress(done: float, message: str = "") -> None:
    return None


@dataclass
class JobContext:
    as_of: dt.datetime  # the frozen clock: jobs never read the wall clock
    params: dict[str, Any] = field(default_factory=dict)
    # progress(fraction done 0..1, short message)
    progress: Callable[[float, str], None] = _no_progress


@dataclass
class JobResult:
    scores: list[ScoreRow] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class AnalyticsJob(Protocol):
    name: str  # "rfm", "clv", "lifecycle", "churn", "clusters", "rules", "forecast", "recommend", "segments"
    model_version: str

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult: ...


def registry() -> dict[str, AnalyticsJob]:
    """Every job the runner knows, in run order (imported here so compute modules stay leaf modules)."""
    from rapport.analytics.churn import ChurnJob
    from rapport.analytics.clusters import ClustersJob
    from rapport.analytics.customer_value import ClvJob
    from rapport.analytics.descriptive import DescriptiveJob
    from rapport.analytics.forecast import ForecastJob
    from rapport.analytics.lifecycle import LifecycleJob
    from rapport.analytics.recommend_job import RecommendJob
    from rapport.analytics.rfm import RfmJob
    from rapport.analytics.rules import RulesJob
    from rapport.segments.job import SegmentsJob

    # Lifecycle reads P(alive) from the CLV model it fits itself; churn reads behaviour only.
    jobs: list[AnalyticsJob] = [
        RfmJob(),
        DescriptiveJob(),
        ClvJob(),
        LifecycleJob(),
        ChurnJob(),
        RulesJob(),
        ForecastJob(),
        RecommendJob(),
        ClustersJob(),
        # Last: segment rules may use every score the jobs above wrote.
        SegmentsJob(),
    ]
    return {job.name: job for job in jobs}


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def result_table_name(job: str, name: str) -> str:
    for part in (job, name):
        if not _NAME.match(part):
            raise ValueError(f"invalid job or table name {part!r} (lower-case letters, digits, _)")
    return f"result_{job}_{name}"


JOB_RUN_DDL = (
    "CREATE TABLE IF NOT EXISTS job_run (job VARCHAR, model_version VARCHAR, as_of TIMESTAMP, "
    "finished_at TIMESTAMP, seconds DOUBLE, scores BIGINT, metrics JSON, params JSON)"
)
SCORE_HISTORY_DDL = (
    "CREATE TABLE IF NOT EXISTS score_history (customer_id BIGINT, kind VARCHAR, value DOUBLE, "
    "label VARCHAR, model_version VARCHAR, computed_at TIMESTAMP)"
)


def store_results(
    store: AnalyticsStore, job: AnalyticsJob, ctx: JobContext, result: JobResult, seconds: float
) -> None:
    con = store.con
    con.execute(JOB_RUN_DDL).fetchall()
    for name, frame in result.tables.items():
        table = result_table_name(job.name, name)
        con.register("_result", frame)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _result").fetchall()  # noqa: S608
        finally:
            con.unregister("_result")
    con.execute(
        "INSERT INTO job_run VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            job.name,
            job.model_version,
            ctx.as_of.replace(tzinfo=None),
            utcnow().replace(tzinfo=None),
            seconds,
            len(result.scores),
            json.dumps(result.metrics),
            json.dumps(ctx.params, default=str),
        ],
    ).fetchall()


def allowed_for_profiling(con: duckdb.DuckDBPyConnection) -> set[int]:
    rows = con.execute("SELECT customer_id FROM customers WHERE profiling_allowed").fetchall()
    return {int(r[0]) for r in rows}


def write_scores(
    session: Session,
    scores: Sequence[ScoreRow],
    *,
    model_version: str,
    computed_at: dt.datetime,
    kinds: Iterable[str],
    batch_size: int = 5_000,
) -> int:
    """Upsert ``scores`` into ``customer_score``; drop older scores of ``kinds`` not in this run."""
    table = table_of(CustomerScore)
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"write_scores supports SQLite and PostgreSQL, not {dialect}")
    stmt = module.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.customer_id, table.c.kind],
        set_={
            "value": stmt.excluded.value,
            "label": stmt.excluded.label,
            "details": stmt.excluded.details,
            "model_version": stmt.excluded.model_version,
            "computed_at": stmt.excluded.computed_at,
        },
    )
    written = 0
    for start in range(0, len(scores), batch_size):
        chunk = scores[start : start + batch_size]
        session.execute(
            stmt,
            [
                {
                    "customer_id": s.customer_id,
                    "kind": s.kind,
                    "value": s.value,
                    "label": s.label,
                    "details": s.details,
                    "model_version": model_version,
                    "computed_at": computed_at,
                }
                for s in chunk
            ],
        )
        written += len(chunk)
    kinds = sorted(set(kinds))
    if kinds:
        session.execute(delete(table).where(table.c.kind.in_(kinds), table.c.computed_at < computed_at))
    return written


def append_history(
    con: duckdb.DuckDBPyConnection, scores: Sequence[ScoreRow], model_version: str, computed_at: dt.datetime
) -> None:
    con.execute(SCORE_HISTORY_DDL).fetchall()
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series([s.customer_id for s in scores], dtype="int64"),
            "kind": pd.Series([s.kind for s in scores], dtype="object"),
            "value": pd.Series([s.value for s in scores], dtype="float64"),
            "label": pd.Series([s.label for s in scores], dtype="object"),
        }
    )
    frame["model_version"] = model_version
    frame["computed_at"] = computed_at.astimezone(dt.UTC).replace(tzinfo=None)
    con.register("_hist", frame)
    try:
        con.execute(
            "INSERT INTO score_history SELECT customer_id, kind, value, label, model_version, "
            "CAST(computed_at AS TIMESTAMP) FROM _hist"
        ).fetchall()
    finally:
        con.unregister("_hist")


@dataclass
class JobOutcome:
    job: str
    model_version: str
    seconds: float
    scores_written: int
    scores_withheld: int
    tables: list[str]
    metrics: dict[str, float]


@dataclass
class RunReport:
    sync: SyncReport | None
    jobs: list[JobOutcome]


ProgressHook = Callable[[str, float, str], None]  # (job name or "sync", fraction, message)


def saved_segment_definitions(session: Session) -> dict[int, Any]:
    """Definitions of the live saved segments (a system job: every team's segments)."""
    t = table_of(Segment)
    rows = session.execute(select(t.c.id, t.c.definition).where(t.c.deleted_at.is_(None)).order_by(t.c.id))
    return {int(r.id): r.definition for r in rows}


def run_jobs(
    database: Database,
    store: AnalyticsStore,
    *,
    as_of: dt.datetime,
    only: Sequence[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    sync: bool = True,
    jobs: dict[str, AnalyticsJob] | None = None,
    progress: ProgressHook | None = None,
    now: dt.datetime | None = None,
) -> RunReport:
    """Sync the store, run the selected jobs, store their tables and write their scores back."""
    available = jobs if jobs is not None else registry()
    names = list(only) if only else list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown job(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    hook = progress or (lambda job, done, message: None)

    sync_report = None
    if sync:
        hook("sync", 0.0, "syncing the analytics store")
        with database.unit(write=False) as session:
            sync_report = store.sync(session, progress=lambda table, rows: hook("sync", 0.5, table))
        hook("sync", 1.0, "synced")

    allowed = allowed_for_profiling(store.con)
    outcomes: list[JobOutcome] = []
    for name in names:
        job = available[name]
        job_params = dict((params or {}).get(name, {}))
        if name == "segments" and "segments" not in job_params:
            with database.unit(write=False) as session:
                store.mirror_scores(session)  # rules see the scores the jobs before wrote
                job_params["segments"] = saved_segment_definitions(session)
        ctx = JobContext(
            as_of=as_of,
            params=job_params,
            progress=lambda done, message, _n=name: hook(_n, done, message),  # type: ignore[misc]
        )
        hook(name, 0.0, "running")
        started = time.perf_counter()
        result = job.run(store.con, ctx)
        seconds = time.perf_counter() - started
        kept = [s for s in result.scores if s.customer_id in allowed]
        store_results(store, job, ctx, result, seconds)
        computed_at = now or utcnow()
        kinds = {s.kind for s in result.scores} or {job.name}
        with database.unit(write=True) as session:
            written = write_scores(
                session, kept, model_version=job.model_version, computed_at=computed_at, kinds=kinds
            )
        append_history(store.con, kept, job.model_version, computed_at)
        hook(name, 1.0, f"{written} scores")
        outcomes.append(
            JobOutcome(
                job=name,
                model_version=job.model_version,
                seconds=seconds,
                scores_written=written,
                scores_withheld=len(result.scores) - len(kept),
                tables=[result_table_name(name, t) for t in result.tables],
                metrics=dict(result.metrics),
            )
        )
    return RunReport(sync_report, outcomes)


__all__ = [
    "AnalyticsJob",
    "JobContext",
    "JobResult",
    "RunReport",
    "ScoreRow",
    "registry",
    "run_jobs",
    "write_scores",
]
