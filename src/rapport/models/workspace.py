"""The web workspace's own state: a staff member's saved list views."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import not_personal


class SavedView(Tracked, Base):
    """Named filters and sort order of a list page, for one user. Search text is never saved."""

    __tablename__ = "saved_view"
    __table_args__ = (Index("ix_saved_view_user_id_page_id", "user_id", "page", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, info=not_personal("saved view id"))
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id"), info=not_personal("staff member whose view it is")
    )
    page: Mapped[str] = mapped_column(String(32), info=not_personal("which list, e.g. customers"))
    name: Mapped[str] = mapped_column(String(100), info=not_personal("name the staff member gave the view"))
    query: Mapped[str] = mapped_column(
        String(2000), info=not_personal("filters and sort as a query string; never search text")
    )
