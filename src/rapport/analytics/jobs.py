"""The analytics job interface: what a compute module hands back to the runner.

TODO(merge): this file is owned by the analytics-store branch; this copy only carries the contract's
dataclasses so the recommendation, rules and forecast jobs can be written and tested alone. Keep the
analytics-store version at merge (the jobs here only use the fields named in the contract; their
progress calls all go through rapport.analytics.purchases.report, the one place to adapt if the
progress callback's signature differs).
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
    """One customer score, written back to the records DB table customer_score."""

    customer_id: int
    kind: str
    value: float | None
    label: str | None
    details: dict[str, Any] | None


def _no_progress(done: float, message: str = "") -> None:
    return None


@dataclass
class JobContext:
    as_of: dt.datetime  # the frozen clock: jobs never read the wall clock
    params: dict[str, Any] = field(default_factory=dict)
    # progress(fraction done 0..1, short message), as in analytics-store's version
    progress: Callable[[float, str], None] = _no_progress


@dataclass
class JobResult:
    scores: list[ScoreRow] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class AnalyticsJob(Protocol):
    name: str
    model_version: str

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult: ...
