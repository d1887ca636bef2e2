"""Descriptive analytics as a job: breakdowns, distributions, repeat rate, cohorts, revenue series."""

from __future__ import annotations

import duckdb
import ibis

from rapport.analytics import metrics
from rapport.analytics.jobs import JobContext, JobResult


class DescriptiveJob:
    """Report tables only (no per-customer scores)."""

    name = "descriptive"
    model_version = "descriptive-1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        backend = ibis.duckdb.from_connection(con)
        customers, orders = backend.table("customers"), backend.table("orders")
        steps = {
            **{f"breakdown_{by}": metrics.breakdown(customers, by, ctx.as_of) for by in metrics.BREAKDOWNS},
            **{
                f"distribution_{of}": metrics.distribution(orders, of, ctx.as_of)
                for of in ("frequency", "monetary", "recency")
            },
            "repeat_purchase": metrics.repeat_purchase(orders, ctx.as_of),
            "cohorts": metrics.cohorts(orders, ctx.as_of),
            "revenue_monthly": metrics.revenue_series(orders, ctx.as_of, "month"),
            "revenue_weekly": metrics.revenue_series(orders, ctx.as_of, "week"),
        }
        tables = {}
        for i, (name, expr) in enumerate(steps.items()):
            tables[name] = backend.execute(expr)
            ctx.progress((i + 1) / len(steps), name)
        repeat = tables["repeat_purchase"].iloc[0]
        monthly = tables["revenue_monthly"]
        return JobResult(
            tables=tables,
            metrics={
                "customers": float(tables["breakdown_gender"]["customers"].sum()),
                "purchasers": float(repeat["purchasers"]),
                "repeat_rate": float(repeat["repeat_rate"]),
                "revenue": float(round(monthly["revenue"].sum(), 2)) if len(monthly) else 0.0,
            },
        )
