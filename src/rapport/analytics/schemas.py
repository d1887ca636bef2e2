"""Response shapes of the analytics API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel


class AnalyticsTable(BaseModel):
    name: str
    computed_at: dt.datetime | None
    items: list[dict[str, Any]]


class Score(BaseModel):
    kind: str
    value: float | None
    label: str | None
    details: dict[str, Any] | None
    model_version: str
    computed_at: dt.datetime


class CustomerScores(BaseModel):
    customer_id: int
    items: list[Score]
