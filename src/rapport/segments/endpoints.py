"""Segment routes: CRUD of definitions, preview of a definition, members of a saved segment."""

# No ``from __future__ import annotations``: FastAPI reads the real classes of the signatures.

from pathlib import Path
from typing import Annotated

import duckdb
from fastapi import APIRouter, Query, Request

from rapport.crud import RecordId, mount, problem_responses
from rapport.deps import Recs
from rapport.segments import service
from rapport.segments.schemas import MembersParams, SegmentMembers, SegmentPreviewIn, SegmentPreviewOut

router = APIRouter()


def _store(request: Request) -> duckdb.DuckDBPyConnection | Path:
    # Tests (and a server holding the store open) put a connection on app.state.
    shared = getattr(request.app.state, "analytics_store", None)
    if isinstance(shared, duckdb.DuckDBPyConnection):
        return shared
    path: Path = request.app.state.settings.resolved_analytics_path
    return path


@router.post(
    "/segments/preview",
    response_model=SegmentPreviewOut,
    tags=["segments"],
    summary="Count the members of a definition and list the first 20",
    operation_id="preview_segment",
    responses=problem_responses(401, 403, 413, 422, 503),
)
def preview_segment(body: SegmentPreviewIn, request: Request, recs: Recs) -> SegmentPreviewOut:
    result = service.preview(recs, _store(request), body.definition)
    return SegmentPreviewOut(count=result.count, customer_ids=result.first_ids)


@router.get(
    "/segments/{record_id}/members",
    response_model=SegmentMembers,
    tags=["segments"],
    summary="Members of a saved segment (customer ids, keyset pages)",
    operation_id="segment_members",
    responses=problem_responses(401, 403, 404, 422, 503),
)
def segment_members(
    record_id: RecordId, params: Annotated[MembersParams, Query()], request: Request, recs: Recs
) -> SegmentMembers:
    out = service.members(recs, _store(request), record_id, cursor=params.cursor, limit=params.limit)
    return SegmentMembers(**out)


mount(router, service.segments)
