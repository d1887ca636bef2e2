"""Audit chain, idempotency records and the wrapped field-encryption keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId
from rapport.privacy.classification import not_personal, pii


class AuditEvent(Base):
    """Append-only, hash-chained. Holds field names and ids, never field values."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_resource_record_id", "resource", "record_id"),
        Index("ix_audit_event_actor_id_at", "actor_id", "at"),
        Index("ix_audit_event_at", "at"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
        info=not_personal("position in the chain"),
    )
    at: Mapped[dt.datetime] = mapped_column(
        info=pii("behavioural", purposes=("security",), note="when the actor acted")
    )
    actor_id: Mapped[int | None] = mapped_column(
        BigInteger,
        info=pii("reference", purposes=("security",), note="the staff member (or key owner) who acted"),
    )
    # user | api_key | system | anonymous
    actor_kind: Mapped[str] = mapped_column(
        String(16), info=not_personal("user, api_key, system or anonymous")
    )
    action: Mapped[str] = mapped_column(String(32), info=pii("behavioural", purposes=("security",)))
    resource: Mapped[str] = mapped_column(String(32), info=not_personal("the kind of record acted on"))
    record_id: Mapped[str | None] = mapped_column(
        String(64),
        info=pii("reference", purposes=("security",), note="the record acted on, often a customer's"),
    )
    fields: Mapped[list[str]] = mapped_column(default=list, info=not_personal("field names, never values"))
    # ok | denied | failed
    outcome: Mapped[str] = mapped_column(
        String(16),
        info=pii("behavioural", purposes=("security",), note="denied attempts are about the actor"),
    )
    ip: Mapped[str | None] = mapped_column(String(64), info=pii("online_identifier", purposes=("security",)))
    request_id: Mapped[str | None] = mapped_column(
        String(64),
        info=pii("online_identifier", purposes=("security",), note="links the event to request logs"),
    )
    details: Mapped[dict[str, Any]] = mapped_column(
        default=dict,
        info=pii(
            "reference", purposes=("security",), note="record ids, counts and reasons; never field values"
        ),
    )
    prev_hash: Mapped[str] = mapped_column(String(64), info=not_personal("chain digest"))
    hash: Mapped[str] = mapped_column(String(64), info=not_personal("chain digest"))


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"
    __table_args__ = (Index("uq_idempotency_record_owner_key", "owner", "key", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("row id of a cache entry"))
    owner: Mapped[str] = mapped_column(
        String(64), info=pii("reference", purposes=("security",), note="the principal that sent the request")
    )
    key: Mapped[str] = mapped_column(String(255), info=not_personal("random key chosen by the client"))
    method: Mapped[str] = mapped_column(String(8), info=not_personal("HTTP method"))
    path: Mapped[str] = mapped_column(
        String(500), info=pii("reference", purposes=("service",), note="holds the id of the record posted to")
    )
    body_hash: Mapped[str] = mapped_column(
        String(64), info=not_personal("SHA-256 of the whole request body, only compared for equality")
    )
    status_code: Mapped[int | None] = mapped_column(info=not_personal("HTTP status"))
    response_body: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii(
            "free_text",
            purposes=("service",),
            note="the created record as returned, names and contact values included",
            protection="encrypted",
        ),
    )
    response_headers: Mapped[str | None] = mapped_column(
        Text, info=pii("reference", purposes=("service",), note="Location carries the created record's id")
    )
    created_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=("security",)))


class EncryptionKey(Base):
    """One version of the field-encryption data key, wrapped by the master key (never stored).

    state: ``active`` (new values are sealed under it; exactly one), ``retiring`` (a rotation is
    re-encrypting its values; still decrypts) or ``retired`` (no value left under it; kept so a
    straggler written during the rotation still decrypts).
    """

    __tablename__ = "encryption_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]
