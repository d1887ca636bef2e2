"""Review-queue decisions other domains change: undoing a merge puts its cluster back in the queue.

Kept apart from rapport.dedup.service (which pulls in Splink and pandas) so rapport.merge can call
it on every undo without loading the linkage model.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rapport.access.records import Records
from rapport.models import DedupCluster
from rapport.models.base import table_of, utcnow

CLUSTER = table_of(DedupCluster)


def reopen_for_undone_merge(session: Session, recs: Records, merge_id: int) -> list[int]:
    """The clusters a merge resolved are open again (undecided), so the duplicates it joined show
    up in the review queue once more; returns their ids. A merge made outside the queue has none."""
    ids = [
        int(i)
        for i in session.execute(
            select(CLUSTER.c.id).where(CLUSTER.c.merge_id == merge_id, CLUSTER.c.status == "merged")
        ).scalars()
    ]
    if not ids:
        return []
    now = utcnow()
    session.execute(
        update(CLUSTER)
        .where(CLUSTER.c.id.in_(ids))
        .values(
            status="open",
            decided_by=None,
            decided_at=None,
            merge_id=None,
            updated_at=now,
            version=CLUSTER.c.version + 1,
        )
    )
    for cid in ids:
        recs.audit("reopen", "dedup", cid, details={"merge_id": merge_id, "reason": "merge undone"})
    return ids
