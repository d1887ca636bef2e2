"""Administration routes: users (with enable/disable), teams and custom field definitions."""

from __future__ import annotations

from fastapi import APIRouter, Response

from rapport.crud import RecordId, mount, problem_responses
from rapport.deps import Recs
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
