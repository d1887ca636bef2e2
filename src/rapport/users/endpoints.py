"""Administration routes: users (with enable/disable), teams and custom field definitions."""

from __future__ import annotations

from fastapi import APIRouter, Response

from rapport.access.policy import Action, Role
from rapport.auth import mfa
from rapport.auth.service import revoke_user
from rapport.crud import RecordId, mount, problem_responses
from rapport.deps import Recs
from rapport.errors import Forbidden
from rapport.http import json_record
from rapport.users.schemas import UserRead
from rapport.users.service import custom_fields, teams, users

router = APIRouter()
mount(router, users)
mount(router, teams)
mount(router, custom_fields)


@router.post(
    "/users/{record_id}/disable",
    response_model=UserRead,
    tags=["users"],
    summary="Disable a user; their sessions and API keys stop working immediately",
    operation_id="disable_user",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def disable_user(record_id: RecordId, recs: Recs) -> Response:
    return json_record(users.set_active(recs, record_id, False))


@router.post(
    "/users/{record_id}/enable",
    response_model=UserRead,
    tags=["users"],
    summary="Enable a disabled user (they log in again with their password)",
    operation_id="enable_user",
    responses=problem_responses(401, 403, 404, 422),
)
def enable_user(record_id: RecordId, recs: Recs) -> Response:
    return json_record(users.set_active(recs, record_id, True))


@router.post(
    "/users/{record_id}/mfa-reset",
    status_code=204,
    tags=["users"],
    summary="Turn off a user's two-factor login (lost device and recovery codes); administrators",
    operation_id="reset_user_mfa",
    responses=problem_responses(401, 403, 404, 422),
)
def reset_user_mfa(record_id: RecordId, recs: Recs) -> Response:
    # Scope first (404 outside it), then the permission, then administrators only: a reset
    # weakens an account, so team leads who may edit users still may not do it.
    users.locate(recs, record_id, Action.update)
    if recs.principal.role is not Role.admin or recs.principal.kind != "user":
        recs.audit("mfa_reset", "user", record_id, outcome="denied")
        raise Forbidden("only administrators reset two-factor login")
    mfa.disable(recs.session, record_id)
    # Sessions opened with the lost factor end too.
    revoke_user(recs.session, record_id)
    recs.audit("mfa_reset", "user", record_id)
    return Response(status_code=204)
