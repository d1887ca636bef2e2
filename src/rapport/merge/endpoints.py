"""Merge routes: merge customers, read a merge, undo it, preview the field choices."""

# No ``from __future__ import annotations``: FastAPI reads the real classes of the signatures.

from typing import Annotated

from fastapi import APIRouter, Query, Response

from rapport.crud import RecordId, problem_responses
from rapport.deps import Recs
from rapport.errors import invalid_field
from rapport.http import JSON
from rapport.merge import service
from rapport.merge.schemas import MergeIn, MergePreview, MergeRead

router = APIRouter()


def _prefer(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit():
            raise invalid_field("prefer", "use field=customer_id, e.g. city=42", "value_error", where="query")
        out[name] = int(value)
    return out


@router.get(
    "/merges/preview",
    response_model=MergePreview,
    tags=["merges"],
    summary="Which value each field would keep, from which customer and by which rule (masked)",
    operation_id="preview_merge",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def preview_merge(
    recs: Recs,
    survivor_id: Annotated[int, Query(ge=1, le=2**53)],
    merged_ids: Annotated[list[int], Query(min_length=1, max_length=service.MAX_MERGED)],
    prefer: Annotated[list[str], Query(max_length=200, description="field=customer_id overrides")] = [],  # noqa: B006
) -> Response:
    for i in merged_ids:
        if not 1 <= i <= 2**53:
            raise invalid_field("merged_ids", "customer ids are positive", "value_error", where="query")
    out = service.preview(recs.session, recs.principal, survivor_id, merged_ids, _prefer(prefer))
    return JSON(out)


@router.post(
    "/merges",
    response_model=MergeRead,
    status_code=201,
    tags=["merges"],
    summary="Merge duplicate customers into a survivor (moves every related record; undoable)",
    operation_id="merge_customers",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def create_merge(body: MergeIn, recs: Recs) -> Response:
    result = service.merge_customers(
        recs.session, recs.principal, body.survivor_id, body.merged_ids, body.overrides, body.reason
    )
    out = service.get_merge(recs.session, recs.principal, result.merge_id, audit=False)
    return JSON(out, status_code=201, headers={"Location": f"/api/v1/merges/{result.merge_id}"})


@router.get(
    "/merges/{record_id}",
    response_model=MergeRead,
    tags=["merges"],
    summary="A merge record: survivor, merged ids, field choices, moved rows, status",
    operation_id="get_merge",
    responses=problem_responses(401, 404, 422),
)
def read_merge(record_id: RecordId, recs: Recs) -> Response:
    return JSON(service.get_merge(recs.session, recs.principal, record_id))


@router.post(
    "/merges/{record_id}/undo",
    response_model=MergeRead,
    tags=["merges"],
    summary="Undo a merge: move every record back, restore the survivor, revive the merged customers",
    operation_id="undo_merge",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def undo(record_id: RecordId, recs: Recs) -> Response:
    service.undo_merge(recs.session, recs.principal, record_id)
    return JSON(service.get_merge(recs.session, recs.principal, record_id, audit=False))
