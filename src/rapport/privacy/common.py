"""What the privacy services share: the data-access layer for a principal outside a request."""

from __future__ import annotations

from sqlalchemy.orm import Session

from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.pagination import CursorCodec

# Privacy services never page through cursors; the codec is required by Records only.
_NO_CURSORS = CursorCodec("rapport.privacy: cursors are not used by these services")


def records(session: Session, actor: Principal) -> Records:
    """Records for ``actor`` (a staff member, or SYSTEM for scheduled jobs) in ``session``."""
    return Records(session, actor, _NO_CURSORS)
