"""People who use Rapport, their teams, credentials and API keys."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rapport.models.base import Base, BigId, Tracked


class Team(Tracked, Base):
    __tablename__ = "team"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))

    members: Mapped[list[User]] = relationship(back_populates="team", lazy="raise")


class User(Tracked, Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), index=True)
    is_active: Mapped[bool] = mapped_column(default=True, server_default="1")
    preferred_language: Mapped[str] = mapped_column(String(16), default="zh-CN")
    last_login_at: Mapped[dt.datetime | None]

    team: Mapped[Team | None] = relationship(back_populates="members", lazy="raise")


class AuthToken(Base):
    """Opaque bearer tokens, stored only as SHA-256 digests so a database leak yields nothing usable."""

    __tablename__ = "auth_token"
    __table_args__ = (Index("ix_auth_token_user_id_revoked_at", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # access | refresh
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    family: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    ip: Mapped[str | None] = mapped_column(String(64))


class ApiKey(Tracked, Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    scopes: Mapped[list[str]]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]
