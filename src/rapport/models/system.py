"""Audit chain and idempotency records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId


class AuditEvent(Base):
    """Append-only, hash-chained. Holds field names and ids, never field values."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_resource_record_id", "resource", "record_id"),
        Index("ix_audit_event_actor_id_at", "actor_id", "at"),
        Index("ix_audit_event_at", "at"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[dt.datetime]
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | api_key | system | anonymous
    action: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[list[str]] = mapped_column(default=list)
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | failed
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"
    __table_args__ = (Index("uq_idempotency_record_owner_key", "owner", "key", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    body_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_headers: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
