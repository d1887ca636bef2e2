"""Interactions with customers and follow-up tasks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import pii


class Interaction(Tracked, Base):
    __tablename__ = "interaction"
    __table_args__ = (
        Index("ix_interaction_customer_id_occurred_at", "customer_id", "occurred_at"),
        Index("ix_interaction_occurred_at_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("service", "analytics"))
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), info=pii("reference", purposes=("service", "sales", "analytics"))
    )
    # note | call | email | chat | visit | social
    kind: Mapped[str] = mapped_column(
        String(16), info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
    # inbound | outbound | internal
    direction: Mapped[str] = mapped_column(
        String(16), info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
    channel: Mapped[str | None] = mapped_column(
        String(32), info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"),
        info=pii("reference", purposes=("service", "administration"), note="the staff member who logged it"),
    )
    occurred_at: Mapped[dt.datetime] = mapped_column(
        info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
    subject: Mapped[str | None] = mapped_column(
        String(300), info=pii("free_text", purposes=("service", "sales"))
    )
    body: Mapped[str | None] = mapped_column(Text, info=pii("free_text", purposes=("service", "sales")))


class Task(Tracked, Base):
    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_assignee_id_status_due_at", "assignee_id", "status", "due_at"),
        Index("ix_task_customer_id", "customer_id"),
        Index("ix_task_due_at_id", "due_at", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("service", "analytics"))
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), info=pii("reference", purposes=("service", "sales", "analytics"))
    )
    title: Mapped[str] = mapped_column(
        String(300),
        info=pii(
            "free_text",
            purposes=("service", "sales"),
            note="shown to data analysts by design; keep titles generic",
        ),
    )
    description: Mapped[str | None] = mapped_column(
        Text, info=pii("free_text", purposes=("service", "sales"))
    )
    # open | done | cancelled
    status: Mapped[str] = mapped_column(
        String(16), default="open", info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
    priority: Mapped[str] = mapped_column(
        String(16), default="normal", info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
    due_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"),
        info=pii("reference", purposes=("service", "administration"), note="the staff member who does it"),
    )
    completed_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("behavioural", purposes=("service", "sales", "analytics"))
    )
