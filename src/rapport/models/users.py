"""People who use Rapport, their teams, credentials and API keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import not_personal, pii


class Team(Tracked, Base):
    __tablename__ = "team"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))

    members: Mapped[list[User]] = relationship(back_populates="team", lazy="raise")


class User(Tracked, Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("administration", "security"))
    )
    username: Mapped[str] = mapped_column(
        String(64), unique=True, info=pii("identity", purposes=("administration", "security"))
    )
    display_name: Mapped[str] = mapped_column(String(200), info=pii("identity", purposes=("administration",)))
    email: Mapped[str | None] = mapped_column(
        String(320), info=pii("contact", purposes=("administration", "security"))
    )
    password_hash: Mapped[str | None] = mapped_column(
        String(200), info=pii("credential", purposes=("security",))
    )
    role: Mapped[str] = mapped_column(
        String(32),
        index=True,
        info=pii("demographic", purposes=("administration", "security"), note="job function"),
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("team.id"),
        index=True,
        info=pii("demographic", purposes=("administration",), note="work unit"),
    )
    is_active: Mapped[bool] = mapped_column(
        default=True, server_default="1", info=pii("record_metadata", purposes=("administration", "security"))
    )
    preferred_language: Mapped[str] = mapped_column(
        String(16), default="zh-CN", info=pii("demographic", purposes=("service",))
    )
    last_login_at: Mapped[dt.datetime | None] = mapped_column(info=pii("behavioural", purposes=("security",)))

    team: Mapped[Team | None] = relationship(back_populates="members", lazy="raise")


class AuthToken(Base):
    """Opaque bearer tokens, stored only as SHA-256 digests so a database leak yields nothing usable."""

    __tablename__ = "auth_token"
    __table_args__ = (Index("ix_auth_token_user_id_revoked_at", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=pii("reference", purposes=("security",)))
    token_hash: Mapped[str] = mapped_column(
        String(64), unique=True, info=pii("credential", purposes=("security",))
    )
    kind: Mapped[str] = mapped_column(String(16), info=not_personal("access or refresh"))  # access | refresh
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id"), info=pii("reference", purposes=("security",))
    )
    family: Mapped[str] = mapped_column(
        String(32),
        index=True,
        info=pii("online_identifier", purposes=("security",), note="random session family id"),
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        info=pii("behavioural", purposes=("security",), note="when the person logged in or refreshed")
    )
    expires_at: Mapped[dt.datetime] = mapped_column(info=pii("record_metadata", purposes=("security",)))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("security",))
    )
    ip: Mapped[str | None] = mapped_column(String(64), info=pii("online_identifier", purposes=("security",)))
    # None: a full session. "mfa_enrol": the role requires 2FA and the person has not enrolled
    # yet, so the token opens only the enrolment routes.
    restriction: Mapped[str | None] = mapped_column(
        String(16),
        info=pii("record_metadata", purposes=("security",), note="session limited to 2FA enrolment"),
    )


class ApiKey(Tracked, Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=pii("reference", purposes=("security",)))
    name: Mapped[str] = mapped_column(
        String(100),
        info=pii("free_text", purposes=("administration",), note="label chosen by the key's owner"),
    )
    prefix: Mapped[str] = mapped_column(
        String(16),
        index=True,
        info=pii(
            "online_identifier",
            purposes=("security",),
            note="non-secret start of the key, visible in client configurations",
        ),
    )
    key_hash: Mapped[str] = mapped_column(
        String(64), unique=True, info=pii("credential", purposes=("security",))
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id"), index=True, info=pii("reference", purposes=("security",))
    )
    scopes: Mapped[list[str]] = mapped_column(
        info=pii("record_metadata", purposes=("security",), note="what the key may do")
    )
    expires_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("security",))
    )
    revoked_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("record_metadata", purposes=("security",))
    )
    last_used_at: Mapped[dt.datetime | None] = mapped_column(info=pii("behavioural", purposes=("security",)))
