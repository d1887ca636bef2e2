"""What the home dashboard shows: plain, immutable values the pages (or a JSON route) render."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True, slots=True)
class Count:
    """One bar of a breakdown. ``key`` None: the field is empty; ``other``: the folded tail."""

    key: str | None
    count: int
    other: bool = False


@dataclass(frozen=True, slots=True)
class MonthRevenue:
    month: str  # "2026-11"
    amount: Decimal
    orders: int


@dataclass(frozen=True, slots=True)
class RevenueSeries:
    currency: str
    months: tuple[MonthRevenue, ...]

    @property
    def total(self) -> Decimal:
        return sum((m.amount for m in self.months), Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class Figures:
    """Aggregates over the caller's record scope. A field is None when the role may not see it."""

    scope: str  # own | team | all (the customer scope the figures cover)
    computed_at: dt.datetime
    customers: int | None = None
    my_customers: int | None = None
    by_stage: tuple[Count, ...] | None = None
    by_region: tuple[Count, ...] | None = None
    # One series per currency, the one with the most revenue first; months oldest first.
    revenue: tuple[RevenueSeries, ...] | None = None
    # Open tasks past their due time on any customer in scope (a team lead's team, an admin's all).
    overdue_in_scope: int | None = None


@dataclass(frozen=True, slots=True)
class TaskDue:
    id: int
    version: int
    customer_id: int
    customer_name: str | None  # None: the role may not see customer names
    title: str
    priority: str
    due_at: dt.datetime | None
    overdue: bool


@dataclass(frozen=True, slots=True)
class Activity:
    kind: Literal["interaction", "order"]
    id: int
    customer_id: int
    customer_name: str | None
    at: dt.datetime
    # interaction: its kind (note, call, ...), direction and subject (None when hidden);
    # order: its number, status, total and currency.
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Home:
    role: str
    figures: Figures | None
    # None: the role may not read tasks (no section); otherwise open tasks due by the end of today.
    tasks: tuple[TaskDue, ...] | None
    tasks_overdue: int
    tasks_due_today: int
    activity: tuple[Activity, ...] | None
