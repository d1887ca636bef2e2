"""RFM scoring as an analytics job: per-customer scores and segments, segment summary, R x F grid.

The metric itself lives in :mod:`rapport.analytics.metrics` (Ibis, any backend); this module runs
it on the store's DuckDB connection and turns the rows into scores for ``customer_score``.
"""

from __future__ import annotations

import duckdb
import ibis

from rapport.analytics import metrics
from rapport.analytics.jobs import JobContext, JobResult, ScoreRow


class RfmJob:
    """Params: ``bins`` (2..9, default 5: quintiles)."""

    name = "rfm"
    model_version = "rfm-1"

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult:
        bins = metrics.params_bins(ctx.params)
        backend = ibis.duckdb.from_connection(con)
        ctx.progress(0.1, "scoring")
        scored = backend.execute(metrics.rfm(backend.table("orders"), ctx.as_of, bins))
        ctx.progress(0.6, "summarising")
        frame = ibis.memtable(scored)
        segments = backend.execute(metrics.rfm_segments(frame))
        grid = backend.execute(metrics.rfm_grid(frame))
        scores = [
            ScoreRow(
                customer_id=int(row.customer_id),
                kind="rfm",
                value=float(row.r * 100 + row.f * 10 + row.m),
                label=str(row.segment),
                details={
                    "r": int(row.r),
                    "f": int(row.f),
                    "m": int(row.m),
                    "recency_days": int(row.recency_days),
                    "frequency": int(row.frequency),
                    "monetary": float(row.monetary),
                    "bins": bins,
                },
            )
            for row in scored.itertuples(index=False)
        ]
        ctx.progress(1.0, f"{len(scores)} customers scored")
        return JobResult(
            scores=scores,
            tables={"customers": scored, "segments": segments, "grid": grid},
            metrics={
                "customers": float(len(scored)),
                "champions": float((scored["segment"] == "champions").sum()),
                "bins": float(bins),
            },
        )
