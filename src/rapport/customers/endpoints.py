"""Customer routes: standard CRUD plus the 360 view and (re)assignment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from rapport.contacts.service import contact_points
from rapport.crud import RecordId, mount, problem_responses
from rapport.customers.schemas import AssignmentIn, Customer360, CustomerExportParams, CustomerRead
from rapport.customers.service import customers
from rapport.db import Database
from rapport.deps import Recs
from rapport.errors import NotFound
from rapport.exports.service import BATCH_SIZE, content_disposition, export_page, plan_customer_export
from rapport.exports.writers import MEDIA_TYPES
from rapport.http import JSON, expected_version, json_record

router = APIRouter()


@router.get(
    "/customers/export",
    response_class=Response,
    tags=["customers"],
    summary="Export customers as CSV, XLSX, JSON Lines or vCard (same filters as the list; audited)",
    description="Streams every matching customer the caller may export (scope, hidden fields and "
    "masks apply; customers who restricted processing are left out). With `limit` the file holds "
    "one page and `X-Next-Cursor` points at the next.",
    operation_id="export_customers",
    responses={
        200: {
            "content": {
                media.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                for media in MEDIA_TYPES.values()
            },
            "description": "The export file",
        },
        **problem_responses(401, 403, 422),
    },
)
async def export_customers(
    request: Request, recs: Recs, params: Annotated[CustomerExportParams, Query()]
) -> Response:
    # Registered before the generic routes so "/customers/export" is not read as a record id.
    if params.pseudonymised:
        plan = plan_customer_export(recs, params)  # permission and format checks
        body, next_cursor = customers.export_pseudonymised_csv(recs, params, request.app.state.pseudonym_key)
        headers = {
            "Content-Disposition": 'attachment; filename="customers-pseudonymised.csv"',
            "Cache-Control": "no-store",
        }
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        return Response(body, media_type=plan.media_type, headers=headers)
    plan = plan_customer_export(recs, params)
    headers = {"Content-Disposition": content_disposition(*plan.filename()), "Cache-Control": "no-store"}
    if params.limit is not None or params.cursor is not None:
        body, next_cursor = export_page(recs, plan, params.cursor, params.limit or BATCH_SIZE)
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
        return Response(body, media_type=plan.media_type, headers=headers)
    # The request's unit ends before the body is sent: the stream reads in units of its own.
    database: Database = request.app.state.database
    batches = plan.stream_batches(lambda: database.unit(write=False), recs.cursors)
    return StreamingResponse(plan.render(batches), media_type=plan.media_type, headers=headers)


mount(router, customers)
mount(router, contact_points)


@router.get(
    "/customers/{record_id}/360",
    response_model=Customer360,
    tags=["customers"],
    summary="Customer 360: profile, contact points, order summary and one timeline",
    operation_id="get_customer_360",
    responses=problem_responses(401, 403, 404, 422),
)
async def customer_360(
    record_id: RecordId, recs: Recs, timeline_limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> Response:
    try:
        return JSON(customers.view_360(recs, record_id, timeline_limit))
    except NotFound:
        from rapport.merge.redirect import redirect_if_merged  # merge builds on customers

        redirect_if_merged(recs, record_id, "/360")
        raise


@router.post(
    "/customers/{record_id}/assignment",
    response_model=CustomerRead,
    tags=["customers"],
    summary="Give a customer to another owner or team (send If-Match)",
    operation_id="assign_customer",
    responses=problem_responses(401, 403, 404, 412, 422, 428),
)
def assign_customer(record_id: RecordId, body: AssignmentIn, request: Request, recs: Recs) -> Response:
    version = expected_version(request, record_id)
    return json_record(customers.reassign(recs, record_id, body.owner_id, body.team_id, version))
