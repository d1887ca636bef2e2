"""Analytics job protocol (contract of issue 6).

TODO(merge): the analytics-store branch owns this module; these definitions copy the contract
exactly so this branch's jobs (clusters, segments) type-check alone. Keep theirs at merge.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pandas as pd


@dataclass(frozen=True)
class ScoreRow:
    """Written back to the records DB table customer_score."""

    customer_id: int
    kind: str  # e.g. "rfm", "clv_12m", "p_alive", "churn_risk", "lifecycle", "cluster", "segment:<id>"
    value: float | None
    label: str | None  # e.g. RFM segment name, lifecycle stage, cluster name
    details: dict[str, Any] | None  # e.g. {"r":5,"f":4,"m":3} or churn reasons


@dataclass(frozen=True)
class JobContext:
    as_of: dt.datetime  # frozen clock for tests
    params: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str, int, int], None] | None = None


@dataclass
class JobResult:
    scores: list[ScoreRow] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # stored as result_<job>_<name>
    metrics: dict[str, float] = field(default_factory=dict)


class AnalyticsJob(Protocol):
    name: str  # "rfm", "clv", "lifecycle", "churn", "clusters", "rules", "forecast", "recommend", "segments"
    model_version: str

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult: ...
