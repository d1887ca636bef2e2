"""Interactions with customers and follow-up tasks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked


class Interaction(Tracked, Base):
    __tablename__ = "interaction"
    __table_args__ = (
        Index("ix_interaction_customer_id_occurred_at", "customer_id", "occurred_at"),
        Index("ix_interaction_occurred_at_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    kind: Mapped[str] = mapped_column(String(16))  # note | call | email | chat | visit | social
    direction: Mapped[str] = mapped_column(String(16))  # inbound | outbound | internal
    channel: Mapped[str | None] = mapped_column(String(32))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    occurred_at: Mapped[dt.datetime]
    subject: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)


class Task(Tracked, Base):
    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_assignee_id_status_due_at", "assignee_id", "status", "due_at"),
        Index("ix_task_customer_id", "customer_id"),
        Index("ix_task_due_at_id", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | done | cancelled
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    due_at: Mapped[dt.datetime | None]
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    completed_at: Mapped[dt.datetime | None]
