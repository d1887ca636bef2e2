"""Import jobs: their progress and checkpoint, rejected rows, and what each job changed.

``import_change`` holds, per record a job created or updated, the values it had before (the
before-image) and the version the job left it at: reverting a job restores the first and refuses
when the second no longer matches (someone changed the record since).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import not_personal, pii


class ImportJob(Tracked, Base):
    __tablename__ = "import_job"
    __table_args__ = (
        Index("ix_import_job_created_by_id", "created_by", "id"),
        Index("ix_import_job_team_id_id", "team_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # customers | orders
    # queued | running | interrupted | cancelled | failed | done | reverted
    status: Mapped[str] = mapped_column(String(16), default="queued")
    mode: Mapped[str] = mapped_column(String(8))  # create | update | upsert
    match_keys: Mapped[list[str]] = mapped_column(default=list)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)  # source column -> field
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    file_name: Mapped[str] = mapped_column(String(300))
    file_path: Mapped[str] = mapped_column(String(1000))
    file_digest: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int] = mapped_column(default=0)
    batch_size: Mapped[int] = mapped_column(default=5000)
    # The last source line whose row is applied (or rejected) and committed; resume starts after it.
    checkpoint_line: Mapped[int] = mapped_column(default=0)
    batches_done: Mapped[int] = mapped_column(default=0)
    rows_done: Mapped[int] = mapped_column(default=0)
    created_count: Mapped[int] = mapped_column(default=0)
    updated_count: Mapped[int] = mapped_column(default=0)
    unchanged_count: Mapped[int] = mapped_column(default=0)
    rejected_count: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    actor_kind: Mapped[str] = mapped_column(String(16), default="user")
    # Started with an API key: the key and its scopes. The job acts with the owner's role narrowed
    # to these (never the full role), and only while the key is still valid.
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_key.id"))
    scopes: Mapped[list[str] | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # The process running the job (host/boot id/pid/start token) and when it last finished a
    # batch: a job whose runner is gone is marked interrupted instead of "running" forever.
    runner_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    reverted_at: Mapped[dt.datetime | None]


class ImportRejection(Base):
    """One refused row: where (line, column) and why. Never the cell's value."""

    __tablename__ = "import_rejection"
    __table_args__ = (Index("ix_import_rejection_job_id_line", "job_id", "line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_job.id", ondelete="CASCADE"))
    line: Mapped[int]
    column: Mapped[str | None] = mapped_column(String(200))
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))


class ImportChange(Base):
    """A record an import created or updated, with its before-image (updates) for revert."""

    __tablename__ = "import_change"
    __table_args__ = (
        Index("ix_import_change_job_id_entity_record_id", "job_id", "entity", "record_id"),
        Index("ix_import_change_entity_record_id", "entity", "record_id"),
    )

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=not_personal("sequence number of the change")
    )
    job_id: Mapped[int] = mapped_column(
        ForeignKey("import_job.id", ondelete="CASCADE"), info=not_personal("the import job")
    )
    entity: Mapped[str] = mapped_column(String(32), info=not_personal("which table the record is in"))
    record_id: Mapped[int] = mapped_column(
        info=pii(
            "reference", purposes=("service", "sales"), note="the customer, order or organisation changed"
        )
    )
    action: Mapped[str] = mapped_column(
        String(8), info=pii("record_metadata", purposes=("service",), note="created or updated")
    )
    before: Mapped[dict[str, Any] | None] = mapped_column(
        info=pii(
            "identity",
            purposes=("service", "sales"),
            note="the record's previous values (names, demographics) and the ids of rows the import "
            "added to it, kept for the revert window only",
        )
    )
    after_version: Mapped[int | None] = mapped_column(
        info=not_personal("the version the import left the record at; a later change refuses revert")
    )


class CustomerExternalId(Base):
    """A customer's id in another system (the source of an import), unique across Rapport."""

    __tablename__ = "customer_external_id"

    external_id: Mapped[str] = mapped_column(
        String(100),
        primary_key=True,
        info=pii("reference", purposes=("service", "sales"), note="the person's id in a source system"),
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"),
        index=True,
        info=pii("reference", purposes=("service", "sales")),
    )
