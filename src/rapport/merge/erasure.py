"""What erasing a person means for their merges (called by rapport.privacy.erasure).

A merge keeps sealed before-images of every record it merged, and aliases that map old ids to
the survivor: both are the person's data. Erasing a customer clears the images and reason of
every merge it took part in (as survivor or as merged record; the record stays with status
``erased`` and ids only, so it can no longer be undone), deletes the aliases, and hands back the
ids of the records merged into it, which are the same person and are erased too.
"""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from rapport.models import CustomerAlias, CustomerMerge
from rapport.models.base import table_of

MERGES = table_of(CustomerMerge)
ALIASES = table_of(CustomerAlias)


def forget_merges(session: Session, customer_id: int) -> tuple[int, list[int]]:
    """(merge records cleared, ids of customers merged into this one); aliases are deleted."""
    as_alias = select(ALIASES.c.merge_id).where(ALIASES.c.alias_id == customer_id).scalar_subquery()
    cleared = int(
        session.execute(  # type: ignore[attr-defined]
            update(MERGES)
            .where(
                or_(MERGES.c.survivor_id == customer_id, MERGES.c.id.in_(as_alias)),
                or_(
                    MERGES.c.before_image.is_not(None),
                    MERGES.c.after_image.is_not(None),
                    MERGES.c.reason.is_not(None),
                    MERGES.c.status != "erased",
                ),
            )
            .values(before_image=None, after_image=None, reason=None, status="erased")
        ).rowcount
    )
    merged_into = list(
        session.execute(
            select(ALIASES.c.alias_id)
            .where(ALIASES.c.customer_id == customer_id)
            .order_by(ALIASES.c.alias_id)
        ).scalars()
    )
    session.execute(
        delete(ALIASES).where(or_(ALIASES.c.customer_id == customer_id, ALIASES.c.alias_id == customer_id))
    )
    return cleared, merged_into
