"""Reading analytics results for the API: the store's result tables and a customer's scores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from sqlalchemy import select

from rapport.access.policy import Action
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER, ResourceSpec
from rapport.analytics.metrics import BREAKDOWNS
from rapport.analytics.store import first_row
from rapport.errors import NotFound, Unavailable
from rapport.models import CustomerScore
from rapport.models.base import table_of

# Aggregates and scores have no table of their own in the records; the spec names the resource
# for the policy (role x action) and points at the scores table.
ANALYTICS = ResourceSpec(
    "analytics",
    table_of(CustomerScore),
    "global",
    tuple(c.name for c in table_of(CustomerScore).columns),
)

# Tables the API serves (aggregates only: per-customer RFM rows stay in the store).
TABLES: dict[str, str] = {
    "rfm_segments": "result_rfm_segments",
    "rfm_grid": "result_rfm_grid",
    **{f"breakdown_{b}": f"result_descriptive_breakdown_{b}" for b in BREAKDOWNS},
    **{
        f"distribution_{d}": f"result_descriptive_distribution_{d}"
        for d in ("frequency", "monetary", "recency")
    },
    "repeat_purchase": "result_descriptive_repeat_purchase",
    "cohorts": "result_descriptive_cohorts",
    "revenue_monthly": "result_descriptive_revenue_monthly",
    "revenue_weekly": "result_descriptive_revenue_weekly",
    # Models and aggregates of the other jobs (no per-customer rows).
    "clv_params": "result_clv_params",
    "churn_model": "result_churn_model",
    "churn_calibration": "result_churn_calibration",
    "clusters_profiles": "result_clusters_profiles",
    "rules": "result_rules_rules",
    "also_bought": "result_rules_also_bought",
    "forecast_revenue_month": "result_forecast_revenue_month",
    "forecast_orders_month": "result_forecast_orders_month",
    "forecast_revenue_week": "result_forecast_revenue_week",
    "forecast_orders_week": "result_forecast_orders_week",
    "forecast_backtest": "result_forecast_backtest",
    "recommend_evaluation": "result_recommend_evaluation",
    "segments_counts": "result_segments_counts",
}


class TableName(StrEnum):
    """The tables GET /analytics/export serves (the keys of TABLES)."""

    rfm_segments = "rfm_segments"
    rfm_grid = "rfm_grid"
    breakdown_gender = "breakdown_gender"
    breakdown_age_band = "breakdown_age_band"
    breakdown_region = "breakdown_region"
    breakdown_channel = "breakdown_channel"
    breakdown_stage = "breakdown_stage"
    distribution_frequency = "distribution_frequency"
    distribution_monetary = "distribution_monetary"
    distribution_recency = "distribution_recency"
    repeat_purchase = "repeat_purchase"
    cohorts = "cohorts"
    revenue_monthly = "revenue_monthly"
    revenue_weekly = "revenue_weekly"
    clv_params = "clv_params"
    churn_model = "churn_model"
    churn_calibration = "churn_calibration"
    clusters_profiles = "clusters_profiles"
    rules = "rules"
    also_bought = "also_bought"
    forecast_revenue_month = "forecast_revenue_month"
    forecast_orders_month = "forecast_orders_month"
    forecast_revenue_week = "forecast_revenue_week"
    forecast_orders_week = "forecast_orders_week"
    forecast_backtest = "forecast_backtest"
    recommend_evaluation = "recommend_evaluation"
    segments_counts = "segments_counts"


assert {t.value for t in TableName} == set(TABLES)


@contextmanager
def open_store(path: Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """The store read-only; None when no run has created it yet."""
    if not path.exists():
        yield None
        return
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:  # a run holds the file's write lock
        raise Unavailable(
            "the analytics store is being updated; try again shortly", headers={"Retry-After": "30"}
        ) from exc
    try:
        yield con
    finally:
        con.close()


def read_table(recs: Records, path: Path, name: str, action: Action = Action.read) -> pd.DataFrame:
    """One result table by its API name, for a caller whose role may read (or export) analytics."""
    recs.require(ANALYTICS, action)
    table = TABLES.get(name)
    if table is None:
        raise NotFound(f"no analytics table {name!r}; choose from {', '.join(TABLES)}")
    # No run yet: an empty table with no computation time (not an error: nothing failed).
    frame, computed_at = pd.DataFrame(), None
    with open_store(path) as con:
        found = con and first_row(
            con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        )
        if con is not None and found and found[0]:
            frame = con.execute(f"SELECT * FROM {table}").df()  # noqa: S608 (names from TABLES)
            job = table.split("_")[1]
            last = first_row(con, "SELECT max(finished_at) FROM job_run WHERE job = ?", [job])
            computed_at = last[0] if last else None
    frame.attrs["computed_at"] = computed_at
    if action is Action.export:
        recs.audit("export", "analytics", None, details={"table": name, "rows": len(frame)})
    return frame


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: timestamps as ISO strings, NaN as null."""
    out = frame.astype(object).where(frame.notna(), None)
    rows: list[dict[str, Any]] = []
    for row in out.to_dict(orient="records"):
        rows.append({str(k): (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()})
    return rows


def customer_scores(recs: Records, customer_id: int) -> list[dict[str, Any]]:
    """The customer's scores: 404 unless the customer is in the caller's scope, 403 without analytics."""
    recs.get(CUSTOMER, customer_id, audit_action="read_scores")
    recs.require(ANALYTICS, Action.read)
    t = table_of(CustomerScore)
    stmt = (
        select(t.c.kind, t.c.value, t.c.label, t.c.details, t.c.model_version, t.c.computed_at)
        .where(t.c.customer_id == customer_id)
        .order_by(t.c.kind)
    )
    return [dict(r) for r in recs.conn.execute(stmt).mappings()]
