"""Rollups behind the home dashboard's key figures, kept by database triggers.

Counting 1,000,000 customers by stage and region, or summing a year of orders per month, takes
tens of seconds on SQLite. These tables hold the same figures pre-grouped by the columns a
record scope filters on (the customer's team and owner), so a dashboard reads a few thousand
rows at most. Triggers (migration 0012_dashboard_rollups) update them in the same statement as every write to
customers, orders and tasks, whatever path the write takes (API, import, merge, erasure, raw SQL),
so they are never stale and need no job. NULL team, owner and region are stored as 0 and ''
(key columns cannot be NULL in a primary key).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base
from rapport.privacy.classification import not_personal

_Count = BigInteger().with_variant(Integer, "sqlite")


class DashboardCustomerCount(Base):
    """Live (not deleted) customers per team, owner, lifecycle stage and region."""

    __tablename__ = "dashboard_customer_count"

    team_id: Mapped[int] = mapped_column(_Count, primary_key=True, info=not_personal("team id, 0 for none"))
    owner_id: Mapped[int] = mapped_column(
        _Count, primary_key=True, info=not_personal("staff owner id, 0 for none")
    )
    lifecycle_stage: Mapped[str] = mapped_column(
        String(32), primary_key=True, info=not_personal("lifecycle stage")
    )
    region: Mapped[str] = mapped_column(
        String(100), primary_key=True, info=not_personal("region, '' for none")
    )
    customers: Mapped[int] = mapped_column(_Count, info=not_personal("how many customers"))


class DashboardOrderDay(Base):
    """Purchases (paid, shipped, completed orders of live customers) per customer team, owner,
    UTC day and currency: amount in cents (exact on both databases) and order count."""

    __tablename__ = "dashboard_order_day"

    team_id: Mapped[int] = mapped_column(_Count, primary_key=True, info=not_personal("team id, 0 for none"))
    owner_id: Mapped[int] = mapped_column(
        _Count, primary_key=True, info=not_personal("staff owner id, 0 for none")
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True, info=not_personal("UTC date, YYYY-MM-DD"))
    currency: Mapped[str] = mapped_column(String(3), primary_key=True, info=not_personal("ISO currency"))
    amount_cents: Mapped[int] = mapped_column(_Count, info=not_personal("sum of order totals in cents"))
    orders: Mapped[int] = mapped_column(_Count, info=not_personal("how many orders"))


class DashboardTaskDay(Base):
    """Open tasks with a due date, of live customers, per customer team, owner, assignee and UTC
    due day (so "my overdue tasks" is a rollup read too)."""

    __tablename__ = "dashboard_task_day"

    team_id: Mapped[int] = mapped_column(_Count, primary_key=True, info=not_personal("team id, 0 for none"))
    owner_id: Mapped[int] = mapped_column(
        _Count, primary_key=True, info=not_personal("staff owner id, 0 for none")
    )
    assignee_id: Mapped[int] = mapped_column(
        _Count, primary_key=True, info=not_personal("staff assignee id, 0 for none")
    )
    day: Mapped[str] = mapped_column(String(10), primary_key=True, info=not_personal("UTC due date"))
    tasks: Mapped[int] = mapped_column(_Count, info=not_personal("how many open tasks"))
