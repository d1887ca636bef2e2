"""Duplicate detection: scan runs, the clusters they found (the review queue) and scored pairs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked, utcnow
from rapport.privacy.classification import not_personal, pii


class DedupRun(Base):
    """One scan: its threshold, backend, sizes, timings and the trained model's parameters."""

    __tablename__ = "dedup_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("run id"))
    started_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, info=not_personal("when the scan started")
    )
    finished_at: Mapped[dt.datetime | None] = mapped_column(info=not_personal("when the scan finished"))
    threshold: Mapped[float] = mapped_column(Float, info=not_personal("match probability threshold"))
    backend: Mapped[str] = mapped_column(String(16), info=not_personal("duckdb or spark"))
    customers: Mapped[int] = mapped_column(Integer, default=0, info=not_personal("records compared"))
    pairs_compared: Mapped[int] = mapped_column(
        Integer, default=0, info=not_personal("blocked pairs the model scored")
    )
    pairs_matched: Mapped[int] = mapped_column(
        Integer, default=0, info=not_personal("pairs at or above the threshold")
    )
    clusters: Mapped[int] = mapped_column(Integer, default=0, info=not_personal("clusters found"))
    details: Mapped[dict[str, Any]] = mapped_column(
        default=dict,
        info=not_personal("timings and the trained model (m/u probabilities per level); no values"),
    )


class DedupCluster(Tracked, Base):
    """A group of customers the model links above the threshold; status open|merged|dismissed."""

    __tablename__ = "dedup_cluster"
    __table_args__ = (Index("ix_dedup_cluster_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("cluster id"))
    run_id: Mapped[int] = mapped_column(
        ForeignKey("dedup_run.id", ondelete="CASCADE"), index=True, info=not_personal("the scan")
    )
    status: Mapped[str] = mapped_column(
        String(16), default="open", info=not_personal("open, merged or dismissed")
    )
    size: Mapped[int] = mapped_column(Integer, info=not_personal("number of customers in the cluster"))
    max_probability: Mapped[float] = mapped_column(Float, info=not_personal("best pair probability"))
    decided_by: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"), info=not_personal("staff member who merged or dismissed it")
    )
    decided_at: Mapped[dt.datetime | None] = mapped_column(
        info=not_personal("when it was merged or dismissed")
    )
    merge_id: Mapped[int | None] = mapped_column(
        Integer, info=not_personal("the merge that resolved it (rapport.merge)")
    )


class DedupPair(Base):
    """Two customers and the model's probability that they are the same person."""

    __tablename__ = "dedup_pair"
    __table_args__ = (Index("ix_dedup_pair_left_id", "left_id"), Index("ix_dedup_pair_right_id", "right_id"))

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("service",), note="pair id")
    )
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("dedup_cluster.id", ondelete="CASCADE"),
        index=True,
        info=pii("reference", purposes=("service",), note="the cluster the pair belongs to"),
    )
    left_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), info=pii("reference", purposes=("service",))
    )
    right_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), info=pii("reference", purposes=("service",))
    )
    probability: Mapped[float] = mapped_column(
        Float,
        info=pii(
            "behavioural",
            purposes=("service",),
            note="automated evaluation: how likely two records are the same person",
        ),
    )
