"""Customer routes: standard CRUD plus the 360 view and (re)assignment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from rapport.contacts.service import contact_points
from rapport.crud import RecordId, mount, problem_responses
from rapport.customers.schemas import AssignmentIn, Customer360, CustomerExportParams, CustomerRead
from rapport.customers.service import customers
from rapport.deps import Recs
from rapport.errors import NotFound
from rapport.http import JSON, expected_version, json_record

router = APIRouter()


@router.get(
    "/customers/export",
    response_class=Response,
    tags=["customers"],
    summary="Export customers as CSV (same filters as the list; audited)",
    operation_id="export_customers",
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "UTF-8 CSV"},
        **problem_responses(401, 403, 422),
    },
)
async def export_customers(
    request: Request, recs: Recs, params: Annotated[CustomerExportParams, Query()]
) -> Response:
    # Registered before the generic routes so "/customers/export" is not read as a record id.
    if params.pseudonymised:
        body, next_cursor = customers.export_pseudonymised_csv(recs, params, request.app.state.pseudonym_key)
        name = "customers-pseudonymised.csv"
    else:
        body, next_cursor = customers.export_csv(recs, params)
        name = "customers.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if next_cursor:
        headers["X-Next-Cursor"] = next_cursor
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


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
