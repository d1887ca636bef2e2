"""Scores the analytics jobs write back to the records database (RFM segment, CLV, churn risk...)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId
from rapport.privacy.classification import not_personal, pii


class CustomerScore(Base):
    """The latest score of each kind per customer; ``computed_at`` and ``model_version`` say which run."""

    __tablename__ = "customer_score"
    __table_args__ = (
        UniqueConstraint("customer_id", "kind"),
        Index("ix_customer_score_kind_label", "kind", "label"),
    )

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("analytics", "profiling"))
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"),
        info=pii("reference", purposes=("analytics", "profiling")),
    )
    kind: Mapped[str] = mapped_column(
        String(64),
        info=pii("behavioural", purposes=("analytics", "profiling"), note="which evaluation: rfm, clv..."),
    )
    value: Mapped[float | None] = mapped_column(
        Float, info=pii("behavioural", purposes=("analytics", "profiling"), note="automated evaluation")
    )
    label: Mapped[str | None] = mapped_column(
        String(64),
        info=pii("behavioural", purposes=("analytics", "profiling"), note="segment or stage name"),
    )
    details: Mapped[dict[str, Any] | None] = mapped_column(
        JSON,
        info=pii(
            "behavioural",
            purposes=("analytics", "profiling"),
            note="component scores and reasons computed by the job; never free text",
        ),
    )
    model_version: Mapped[str] = mapped_column(
        String(32), info=not_personal("version of the model that computed the score")
    )
    computed_at: Mapped[dt.datetime] = mapped_column(
        info=pii("record_metadata", purposes=("analytics", "profiling"))
    )
