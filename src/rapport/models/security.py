"""Second factors, single sign-on identities, role 2FA requirements and webhooks."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked, utcnow
from rapport.privacy.classification import not_personal, pii


class UserTotp(Base):
    """A staff member's TOTP secret (RFC 6238); confirmed once the first code matched."""

    __tablename__ = "user_totp"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"),
        primary_key=True,
        info=pii("reference", purposes=("security",)),
    )
    # The base32 secret sealed by rapport.auth.mfa.seal (AES-GCM, key derived from the secret key).
    secret: Mapped[str] = mapped_column(
        String(200), info=pii("credential", purposes=("security",), note="TOTP shared secret, sealed")
    )
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("security",), note="when two-factor login was switched on")
    )
    # Highest accepted time step: a code of that step or earlier is refused (replay).
    last_step: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0", info=pii("behavioural", purposes=("security",))
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, info=pii("record_metadata", purposes=("security",))
    )


class RecoveryCode(Base):
    """Single-use recovery codes, stored as argon2 hashes."""

    __tablename__ = "mfa_recovery_code"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("row id"))
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"),
        index=True,
        info=pii("reference", purposes=("security",)),
    )
    code_hash: Mapped[str] = mapped_column(String(200), info=pii("credential", purposes=("security",)))
    used_at: Mapped[dt.datetime | None] = mapped_column(info=pii("behavioural", purposes=("security",)))
    created_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, info=pii("record_metadata", purposes=("security",))
    )


class RoleMfaRequirement(Base):
    """Roles whose members must use a second factor (set by an administrator)."""

    __tablename__ = "role_mfa_requirement"

    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    required: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OidcIdentity(Base):
    """Links an identity provider's subject to a staff account."""

    __tablename__ = "oidc_identity"
    __table_args__ = (Index("uq_oidc_identity_issuer_subject", "issuer", "subject", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("row id"))
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"),
        index=True,
        info=pii("reference", purposes=("security",)),
    )
    issuer: Mapped[str] = mapped_column(String(300), info=not_personal("the identity provider's URL"))
    subject: Mapped[str] = mapped_column(
        String(255), info=pii("online_identifier", purposes=("security",), note="the person's id at the IdP")
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, info=pii("record_metadata", purposes=("security",))
    )
    last_login_at: Mapped[dt.datetime | None] = mapped_column(info=pii("behavioural", purposes=("security",)))


class WebhookSubscription(Tracked, Base):
    """An external receiver of record events (ids only, never field values)."""

    __tablename__ = "webhook_subscription"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(default=list)
    # Stored as given: Rapport signs with it at send time. Known gap: not yet under field encryption.
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)


class WebhookDelivery(Base):
    """One attempt to deliver an event: the delivery log."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_subscription_id_id", "subscription_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("row id"))
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_subscription.id", ondelete="CASCADE"), info=not_personal("the receiver")
    )
    event: Mapped[str] = mapped_column(String(64), info=not_personal("e.g. customer.created"))
    record_id: Mapped[str | None] = mapped_column(
        String(64), info=pii("reference", purposes=("service",), note="the customer the event is about")
    )
    outcome: Mapped[str] = mapped_column(String(16), info=not_personal("delivered, failed or refused"))
    status_code: Mapped[int | None] = mapped_column(info=not_personal("the receiver's HTTP status"))
    error: Mapped[str | None] = mapped_column(Text, info=not_personal("why delivery failed; no payload"))
    attempted_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, info=pii("record_metadata", purposes=("service",))
    )
