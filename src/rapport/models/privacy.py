"""Data-subject requests (PIPL art. 44-50, GDPR art. 15-22): one case per request.

Consent ledger, processing restriction, data-sharing register, complaints and the privacy portal.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked, utcnow
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


_CONSENT = ("legal_obligation", "service")


class ConsentEvent(Base):
    """Append-only ledger: one row per grant or withdrawal of one purpose (never a bundle).

    The database refuses UPDATE and DELETE on this table, like the audit chain.
    """

    __tablename__ = "consent_event"
    __table_args__ = (Index("ix_consent_event_customer_id_purpose_id", "customer_id", "purpose", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=pii("reference", purposes=_CONSENT))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), info=pii("reference", purposes=_CONSENT, note="whose consent")
    )
    purpose: Mapped[str] = mapped_column(
        String(32), info=pii("behavioural", purposes=_CONSENT, note="the one purpose consented to")
    )
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("sharing_partner.id"),
        info=not_personal("the recipient organisation of a third-party or cross-border consent"),
    )
    granted: Mapped[bool] = mapped_column(
        info=pii("behavioural", purposes=_CONSENT, note="grant or withdrawal")
    )
    source: Mapped[str] = mapped_column(
        String(32), info=pii("behavioural", purposes=_CONSENT, note="how it was given: form, call, portal")
    )
    evidence: Mapped[str | None] = mapped_column(
        Text,
        info=pii(
            "free_text", purposes=_CONSENT, note="reference to the signed form or recording; staff-typed"
        ),
    )
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, info=pii("record_metadata", purposes=_CONSENT))
    actor_id: Mapped[int | None] = mapped_column(
        BigInteger, info=pii("reference", purposes=("security",), note="staff member who recorded it")
    )
    # user | api_key | system | data_subject
    actor_kind: Mapped[str] = mapped_column(String(16), info=not_personal("kind of actor"))
    request_id: Mapped[str | None] = mapped_column(
        String(64), info=pii("online_identifier", purposes=("security",), note="links to the audit chain")
    )


class ConsentState(Base):
    """Current consent per (customer, purpose, partner): derived from the ledger for fast checks."""

    __tablename__ = "consent_state"
    __table_args__ = (
        Index("ix_consent_state_purpose_partner_key_granted", "purpose", "partner_key", "granted"),
    )

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), primary_key=True, info=pii("reference", purposes=_CONSENT)
    )
    purpose: Mapped[str] = mapped_column(
        String(32), primary_key=True, info=pii("behavioural", purposes=_CONSENT)
    )
    # 0 when the purpose names no partner: primary-key columns cannot be NULL.
    partner_key: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, info=not_personal("partner id, 0 for purposes without a partner")
    )
    granted: Mapped[bool] = mapped_column(info=pii("behavioural", purposes=_CONSENT))
    event_id: Mapped[int] = mapped_column(
        ForeignKey("consent_event.id"), info=pii("reference", purposes=_CONSENT, note="the deciding event")
    )
    at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=_CONSENT))


class ProcessingRestriction(Base):
    """Restriction of processing (GDPR art. 18, PIPL art. 44): no purpose may use the customer."""

    __tablename__ = "processing_restriction"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"), primary_key=True, info=pii("reference", purposes=_CONSENT)
    )
    restricted: Mapped[bool] = mapped_column(
        info=pii("behavioural", purposes=_CONSENT, note="the person asked that processing be restricted")
    )
    reason: Mapped[str] = mapped_column(
        String(500), info=pii("free_text", purposes=_CONSENT, note="why; staff-typed")
    )
    changed_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=_CONSENT))
    changed_by: Mapped[int | None] = mapped_column(
        BigInteger, info=pii("reference", purposes=("security",), note="staff member who changed it")
    )


class SharingPartner(Tracked, Base):
    """An organisation personal data may be provided to (PIPL art. 23)."""

    __tablename__ = "sharing_partner"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))


class SharingAgreement(Tracked, Base):
    """A data-sharing agreement: what may go to a partner, why, on which basis, until when."""

    __tablename__ = "sharing_agreement"
    __table_args__ = (Index("ix_sharing_agreement_partner_id_valid_until", "partner_id", "valid_until"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("sharing_partner.id"))
    title: Mapped[str] = mapped_column(String(200))
    purposes: Mapped[list[str]] = mapped_column(default=list)
    data_categories: Mapped[list[str]] = mapped_column(default=list)
    legal_basis: Mapped[str] = mapped_column(String(32))
    valid_from: Mapped[dt.datetime]
    valid_until: Mapped[dt.datetime]
    cross_border: Mapped[bool] = mapped_column(default=False)
    # standard_contract | certification | security_assessment (PIPL art. 38)
    transfer_mechanism: Mapped[str | None] = mapped_column(String(32))
    destination_country: Mapped[str | None] = mapped_column(String(2))
    impact_assessment_ref: Mapped[str] = mapped_column(String(200))


class ProvisionLog(Base):
    """Append-only: every provision of personal data to a partner, with the customers concerned."""

    __tablename__ = "provision_log"
    __table_args__ = (Index("ix_provision_log_agreement_id_at", "agreement_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("row id of a log entry"))
    agreement_id: Mapped[int] = mapped_column(
        ForeignKey("sharing_agreement.id"), info=not_personal("the agreement relied on")
    )
    partner_id: Mapped[int] = mapped_column(ForeignKey("sharing_partner.id"), info=not_personal("recipient"))
    purpose: Mapped[str] = mapped_column(String(32), info=not_personal("purpose of the provision"))
    categories: Mapped[list[str]] = mapped_column(info=not_personal("data categories provided"))
    customer_ids: Mapped[list[str]] = mapped_column(
        info=pii("reference", purposes=("legal_obligation",), note="whose data was provided")
    )
    customer_count: Mapped[int] = mapped_column(Integer, info=not_personal("how many customers"))
    at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, info=pii("record_metadata", purposes=("legal_obligation",))
    )
    actor_id: Mapped[int | None] = mapped_column(
        BigInteger, info=pii("reference", purposes=("security",), note="staff member who provided it")
    )
    request_id: Mapped[str | None] = mapped_column(
        String(64), info=pii("online_identifier", purposes=("security",))
    )


class PrivacyComplaint(Tracked, Base):
    """A complaint about the handling of personal data, tracked to closure against deadlines."""

    __tablename__ = "privacy_complaint"
    __table_args__ = (Index("ix_privacy_complaint_status_resolve_due_at", "status", "resolve_due_at"),)

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("legal_obligation",))
    )
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer.id"),
        info=pii("reference", purposes=("legal_obligation",), note="the complainant, when known"),
    )
    channel: Mapped[str] = mapped_column(String(32), info=pii("behavioural", purposes=("legal_obligation",)))
    summary: Mapped[str] = mapped_column(Text, info=pii("free_text", purposes=("legal_obligation",)))
    # received | acknowledged | resolved
    status: Mapped[str] = mapped_column(
        String(16), default="received", info=pii("record_metadata", purposes=("legal_obligation",))
    )
    received_at: Mapped[dt.datetime] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    acknowledge_due_at: Mapped[dt.datetime] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    resolve_due_at: Mapped[dt.datetime] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    resolved_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("legal_obligation",))
    )
    resolution: Mapped[str | None] = mapped_column(
        Text, info=pii("free_text", purposes=("legal_obligation",))
    )
    handler_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"),
        info=pii("reference", purposes=("administration",), note="staff member handling it"),
    )


class PortalChallenge(Base):
    """A one-time code sent to a customer's verified address; only digests are kept.

    A row exists for unknown addresses too (customer_id NULL): the answer and the rate limit are
    the same whether or not the address belongs to anyone.
    """

    __tablename__ = "portal_challenge"
    __table_args__ = (
        Index("ix_portal_challenge_address_hash_created_at", "address_hash", "created_at"),
        Index("ix_portal_challenge_ip_created_at", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("row id"))
    handle_hash: Mapped[str] = mapped_column(
        String(64), unique=True, info=not_personal("digest of the random handle given to the browser")
    )
    address_hash: Mapped[str] = mapped_column(
        String(64),
        info=pii("contact", purposes=("security",), note="keyed digest of the address, for rate limiting"),
    )
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), info=pii("reference", purposes=("security",))
    )
    code_hash: Mapped[str] = mapped_column(String(64), info=pii("credential", purposes=("security",)))
    attempts: Mapped[int] = mapped_column(default=0, info=pii("behavioural", purposes=("security",)))
    created_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=("security",)))
    expires_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=("security",)))
    consumed_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("security",))
    )
    ip: Mapped[str | None] = mapped_column(String(64), info=pii("online_identifier", purposes=("security",)))


class PortalSession(Base):
    """A short-lived privacy-session token of a customer who proved control of an address."""

    __tablename__ = "portal_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("row id"))
    token_hash: Mapped[str] = mapped_column(
        String(64), unique=True, info=pii("credential", purposes=("security",))
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"),
        index=True,
        info=pii("reference", purposes=("security",)),
    )
    created_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=("security",)))
    expires_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=("security",)))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("security",))
    )
    ip: Mapped[str | None] = mapped_column(String(64), info=pii("online_identifier", purposes=("security",)))
