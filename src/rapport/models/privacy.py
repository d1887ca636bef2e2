"""Data-subject requests (PIPL art. 44-50, GDPR art. 15-22): one case per request."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import not_personal, pii


class DataSubjectRequest(Tracked, Base):
    """A person asked to see, copy, correct, delete, port or restrict their data, or withdrew consent."""

    __tablename__ = "data_subject_request"
    __table_args__ = (
        Index("ix_data_subject_request_status_due_at", "status", "due_at"),
        Index("ix_data_subject_request_customer_id", "customer_id"),
        Index("ix_data_subject_request_assignee_id", "assignee_id"),
    )

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("legal_obligation",))
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"),
        info=pii("reference", purposes=("legal_obligation",), note="the person who asked"),
    )
    # access | correct | delete | port | restrict | withdraw_consent
    kind: Mapped[str] = mapped_column(
        String(24), info=pii("behavioural", purposes=("legal_obligation",), note="which right was exercised")
    )
    # received | verified | in_progress | completed | rejected
    status: Mapped[str] = mapped_column(
        String(16), default="received", info=pii("record_metadata", purposes=("legal_obligation",))
    )
    jurisdiction: Mapped[str] = mapped_column(
        String(8), info=not_personal("which law's deadline applies: PIPL or GDPR")
    )
    channel: Mapped[str] = mapped_column(
        String(32),
        info=pii("behavioural", purposes=("legal_obligation",), note="how the person reached us"),
    )
    details: Mapped[str | None] = mapped_column(
        Text,
        info=pii(
            "free_text",
            purposes=("legal_obligation",),
            note="what the person asked for in their words; erased with the person",
        ),
    )
    purpose: Mapped[str | None] = mapped_column(
        String(32),
        info=pii("behavioural", purposes=("legal_obligation",), note="consent purpose withdrawn"),
    )
    received_at: Mapped[dt.datetime] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    due_at: Mapped[dt.datetime] = mapped_column(
        info=not_personal("legal deadline computed from the jurisdiction")
    )
    extended_at: Mapped[dt.datetime | None] = mapped_column(
        info=not_personal("when the one allowed extension was taken")
    )
    extension_reason: Mapped[str | None] = mapped_column(
        Text, info=pii("free_text", purposes=("legal_obligation",), note="staff-typed; may name the person")
    )
    verified_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    completed_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    resolution: Mapped[str | None] = mapped_column(
        Text,
        info=pii(
            "free_text",
            purposes=("legal_obligation",),
            note="outcome or reason for rejection, told to the person",
        ),
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"),
        info=pii("reference", purposes=("administration",), note="the staff member handling the case"),
    )
    opened_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"),
        info=pii("reference", purposes=("administration",), note="the staff member who logged it"),
    )
    overdue_notified_at: Mapped[dt.datetime | None] = mapped_column(
        info=not_personal("when the overdue alert went out")
    )
    export_body: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        info=pii(
            "free_text",
            purposes=("legal_obligation",),
            retention="derived",
            note="the JSON export produced for an access or port request; purged when it expires",
        ),
    )
    export_expires_at: Mapped[dt.datetime | None] = mapped_column(
        info=not_personal("when the produced export is purged")
    )
