"""Saved customer segments: a name and a rule definition evaluated on the analytics store."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import not_personal


class Segment(Tracked, Base):
    """Definitions only: members are computed on demand, never stored here."""

    __tablename__ = "segment"
    __table_args__ = (
        Index("ix_segment_team_id_id", "team_id", "id"),
        Index("ix_segment_owner_id_id", "owner_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("segment id"))
    name: Mapped[str] = mapped_column(String(200), info=not_personal("name of a group of customers"))
    description: Mapped[str | None] = mapped_column(
        Text, info=not_personal("what the group is for, typed by staff about the group")
    )
    definition: Mapped[dict[str, Any]] = mapped_column(
        info=not_personal("rules over fields and scores; names no person")
    )
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_user.id"), info=not_personal("staff member who owns the definition")
    )
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), info=not_personal("owning team"))
    deleted_at: Mapped[dt.datetime | None] = mapped_column(info=not_personal("soft-deletion time"))
