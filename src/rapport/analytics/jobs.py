"""Analytics job protocol: what every compute module hands the runner.

TODO(merge): this file is owned by the analytics-store branch; these definitions follow the shared
contract exactly so that branch's version replaces this one unchanged (the lead keeps theirs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pandas as pd

# Orders with these statuses count as purchases (see rapport.orders.schemas.OrderStatus).
PURCHASE_STATUSES: tuple[str, ...] = ("paid", "shipped", "completed")


@dataclass(frozen=True)
class ScoreRow:
    """One score written back to the records database table customer_score."""

    customer_id: int
    kind: str
    value: float | None
    label: str | None
    details: dict[str, Any] | None


def _no_progress(done: int, total: int, message: str) -> None:
    return None


@dataclass(frozen=True)
class JobContext:
    as_of: dt.datetime
    params: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int, int, str], None] = _no_progress


@dataclass
class JobResult:
    scores: list[ScoreRow] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class AnalyticsJob(Protocol):
    name: str
    model_version: str

    def run(self, con: duckdb.DuckDBPyConnection, ctx: JobContext) -> JobResult: ...
