"""Review queue of duplicate clusters: list, read, dismiss, merge (through rapport.merge)."""

# No ``from __future__ import annotations``: FastAPI reads the real classes of the signatures.

from typing import Annotated

from fastapi import APIRouter, Query

from rapport.crud import RecordId, problem_responses
from rapport.dedup import service
from rapport.dedup.schemas import ClusterFilters, DedupClusterPage, DedupClusterRead, MergeIn
from rapport.deps import Recs

router = APIRouter()


@router.get(
    "/dedup/clusters",
    response_model=DedupClusterPage,
    tags=["dedup"],
    summary="Probable duplicate clusters (keyset pages), members masked for the caller's role",
    operation_id="list_dedup_clusters",
    responses=problem_responses(401, 403, 422),
)
def list_clusters(params: Annotated[ClusterFilters, Query()], recs: Recs) -> DedupClusterPage:
    items, next_cursor = service.list_clusters(
        recs, status=params.status, sort=params.sort or "id", cursor=params.cursor, limit=params.limit
    )
    return DedupClusterPage(
        items=[DedupClusterRead(**c) for c in items], next_cursor=next_cursor, limit=params.limit
    )


@router.get(
    "/dedup/clusters/{record_id}",
    response_model=DedupClusterRead,
    tags=["dedup"],
    summary="One duplicate cluster with its members and pair probabilities",
    operation_id="get_dedup_cluster",
    responses=problem_responses(401, 403, 404, 422),
)
def get_cluster(record_id: RecordId, recs: Recs) -> DedupClusterRead:
    return DedupClusterRead(**service.get_cluster(recs, record_id))


@router.post(
    "/dedup/clusters/{record_id}/dismiss",
    response_model=DedupClusterRead,
    tags=["dedup"],
    summary="Not duplicates: take the cluster off the queue (later scans do not bring it back)",
    operation_id="dismiss_dedup_cluster",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def dismiss_cluster(record_id: RecordId, recs: Recs) -> DedupClusterRead:
    return DedupClusterRead(**service.dismiss(recs, record_id))


@router.post(
    "/dedup/clusters/{record_id}/merge",
    response_model=DedupClusterRead,
    tags=["dedup"],
    summary="Merge the cluster's members into one survivor (rapport.merge)",
    operation_id="merge_dedup_cluster",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def merge_cluster(record_id: RecordId, body: MergeIn, recs: Recs) -> DedupClusterRead:
    return DedupClusterRead(**service.merge(recs, record_id, body.survivor_id, body.reason))
