"""Data-subject request routes: open, list, assign, advance and execute privacy request cases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from sqlalchemy import ColumnElement

from rapport.access.policy import Action
from rapport.access.records import Records, Row
from rapport.crud import RecordId, Resource, equal_filters, mount, problem_responses
from rapport.customers.schemas import CustomerRead
from rapport.customers.service import customers
from rapport.deps import CurrentPrincipal, DbSession, Recs
from rapport.http import JSON, expected_version, idempotent, json_record
from rapport.models.base import utcnow
from rapport.privacy import requests as dsr
from rapport.privacy.portability import import_customer, to_csv_zip
from rapport.privacy.schemas import (
    CustomerExportIn,
    Extension,
    RequestAssignment,
    RequestCreate,
    RequestFilters,
    RequestRead,
    StatusChange,
)
from rapport.privacy.tasks import scrub_after_erasure

router = APIRouter()
_T = dsr.SPEC.table


class Requests(Resource):
    spec = dsr.SPEC
    read = RequestRead
    create = RequestCreate
    filters = RequestFilters
    deletable = False
    default_sort = "-id"
    tag = "privacy requests"

    def where(self, recs: Records, f: RequestFilters) -> Sequence[ColumnElement[bool]]:
        clauses = equal_filters(_T, f, "status", "kind", "customer_id", "assignee_id")
        if f.overdue:
            clauses += [_T.c.status.in_([s.value for s in dsr.OPEN]), _T.c.due_at < utcnow()]
        return clauses

    def do_create(self, recs: Records, body: Any, parent_id: int | None = None) -> Row:
        new_id = dsr.create(
            recs,
            body.customer_id,
            dsr.RequestKind(body.kind),
            channel=body.channel,
            details=body.details,
            jurisdiction=dsr.Jurisdiction(body.jurisdiction) if body.jurisdiction else None,
            purpose=body.purpose,
        )
        if recs.principal.can(self.spec.name, Action.read):
            return recs.get(self.spec, new_id, audit_action=None)
        # Openers who do not handle cases learn the case number, its state and its deadline.
        row = (
            recs.conn.execute(
                _T.select()
                .with_only_columns(_T.c.id, _T.c.customer_id, _T.c.kind, _T.c.status, _T.c.due_at)
                .where(_T.c.id == new_id)
            )
            .mappings()
            .one()
        )
        return dict(row)


requests_resource = Requests()


@router.get(
    "/privacy/requests/overdue",
    response_model=list[RequestRead],
    tags=["privacy requests"],
    summary="Open requests past their legal deadline (most overdue first)",
    operation_id="list_overdue_data_subject_requests",
    responses=problem_responses(401, 403),
)
async def overdue(recs: Recs) -> Response:
    return JSON(dsr.overdue_rows(recs))


mount(router, requests_resource)


@router.post(
    "/privacy/requests/{record_id}/status",
    response_model=RequestRead,
    tags=["privacy requests"],
    summary="Verify, start, complete (carries the request out) or reject a request (send If-Match)",
    operation_id="change_data_subject_request_status",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
def change_status(
    record_id: RecordId, body: StatusChange, request: Request, recs: Recs, background: BackgroundTasks
) -> Response:
    version = expected_version(request, record_id)
    row = dsr.transition(
        recs, record_id, dsr.RequestStatus(body.status), version=version, resolution=body.resolution
    )
    if row["kind"] == dsr.RequestKind.delete and row["status"] == dsr.RequestStatus.completed:
        # Runs after the response, so after the unit committed; the VACUUM waits for the daily purge.
        background.add_task(scrub_after_erasure, request.app.state.database)
    return json_record(row)


@router.post(
    "/privacy/requests/{record_id}/extension",
    response_model=RequestRead,
    tags=["privacy requests"],
    summary="Extend the deadline once, with a reason (send If-Match)",
    operation_id="extend_data_subject_request",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
def extend(record_id: RecordId, body: Extension, request: Request, recs: Recs) -> Response:
    version = expected_version(request, record_id)
    return json_record(dsr.extend(recs, record_id, reason=body.reason, version=version))


@router.post(
    "/privacy/requests/{record_id}/assignment",
    response_model=RequestRead,
    tags=["privacy requests"],
    summary="Give the request to a staff member who handles privacy requests (send If-Match)",
    operation_id="assign_data_subject_request",
    responses=problem_responses(401, 403, 404, 412, 422, 428),
)
def assign(record_id: RecordId, body: RequestAssignment, request: Request, recs: Recs) -> Response:
    version = expected_version(request, record_id)
    return json_record(dsr.assign(recs, record_id, body.assignee_id, version=version))


@router.get(
    "/privacy/requests/{record_id}/export",
    response_class=Response,
    tags=["privacy requests"],
    summary="The export an access or port request produced: JSON, or CSV files in a ZIP",
    operation_id="get_data_subject_request_export",
    responses={
        200: {
            "content": {"application/json": {}, "application/zip": {"schema": {"type": "string"}}},
            "description": "rapport.customer-export/1",
        },
        **problem_responses(401, 403, 404, 422),
    },
)
async def export(
    record_id: RecordId,
    recs: Recs,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Response:
    data = dsr.export_of(recs, record_id)
    headers = {"Cache-Control": "no-store"}
    if format == "csv":
        headers["Content-Disposition"] = f'attachment; filename="request-{record_id}.zip"'
        return Response(to_csv_zip(data), media_type="application/zip", headers=headers)
    headers["Content-Disposition"] = f'attachment; filename="request-{record_id}.json"'
    return JSON(data, headers=headers)


@router.post(
    "/privacy/imports",
    status_code=201,
    response_model=CustomerRead,
    tags=["privacy requests"],
    summary="Create a customer from a rapport.customer-export/1 document (portability, receiving side)",
    operation_id="import_customer_export",
    responses=problem_responses(401, 403, 409, 413, 422),
)
def import_export(
    body: CustomerExportIn, request: Request, recs: Recs, db: DbSession, principal: CurrentPrincipal
) -> Response:
    def produce() -> Response:
        new_id = import_customer(recs, body.model_dump())
        return json_record(customers.get_after_write(recs, new_id), 201)

    return idempotent(db, request, principal, body, produce)
