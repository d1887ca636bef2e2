"""Audit trail routes: browse events (admins: all; team leads: their team's) and verify the chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from rapport.audit import service
from rapport.audit.schemas import AuditFilters, AuditPage, ChainReport
from rapport.crud import problem_responses
from rapport.deps import Recs
from rapport.http import JSON

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "/events",
    response_model=AuditPage,
    summary="Audit events, newest first",
    operation_id="list_audit_events",
    responses=problem_responses(401, 403, 422),
)
def list_events(recs: Recs, params: Annotated[AuditFilters, Query()]) -> Response:
    return JSON(service.events(recs, params))


@router.get(
    "/verify",
    response_model=ChainReport,
    summary="Recompute the hash chain and report the first broken link (administrators)",
    operation_id="verify_audit_chain",
    responses=problem_responses(401, 403),
)
def verify(recs: Recs) -> Response:
    return JSON(service.verify(recs))
