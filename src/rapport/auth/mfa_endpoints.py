"""Two-factor enrolment, recovery codes and the per-role requirement."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.auth import mfa
from rapport.auth.endpoints import _audit
from rapport.auth.schemas import (
    EnrolmentOut,
    MfaDisableIn,
    MfaStatusOut,
    OtpIn,
    RecoveryCodesOut,
    RoleRequirementIn,
)
from rapport.crud import problem_responses
from rapport.deps import CurrentPrincipal, DbSession
from rapport.errors import Conflict, Forbidden, RateLimited, invalid_field
from rapport.http import JSON
from rapport.models import User
from rapport.security.passwords import verify_password

router = APIRouter(prefix="/auth/2fa", tags=["auth"])

_NO_STORE = {"Cache-Control": "no-store"}


def _person(principal: Principal) -> int:
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("two-factor settings belong to a person, not to an API key")
    return principal.user_id


def _admin(principal: Principal) -> None:
    if principal.role is not Role.admin or principal.kind != "user":
        raise Forbidden("only administrators set which roles require two-factor authentication")


@router.get(
    "",
    response_model=MfaStatusOut,
    summary="My two-factor status",
    operation_id="get_mfa_status",
    responses=problem_responses(401, 403),
)
def status(db: DbSession, principal: CurrentPrincipal) -> Response:
    uid = _person(principal)
    return JSON(
        {
            "enrolled": mfa.enrolled(db, uid),
            "required_by_role": mfa.role_requires_mfa(db, principal.role.value),
            "recovery_codes_left": mfa.remaining_recovery_codes(db, uid),
        }
    )


@router.post(
    "/enrol",
    response_model=EnrolmentOut,
    summary="Start TOTP enrolment: a new secret, shown once",
    operation_id="begin_mfa_enrolment",
    responses=problem_responses(401, 403, 409),
)
def enrol(request: Request, db: DbSession, principal: CurrentPrincipal) -> Response:
    uid = _person(principal)
    secret, uri = mfa.begin_enrolment(
        db, uid, principal.username, request.app.state.settings.resolved_secret_key()
    )
    _audit(db, principal, "mfa_enrol_start", "user", uid)
    return JSON({"secret": secret, "otpauth_uri": uri}, headers=_NO_STORE)


@router.post(
    "/confirm",
    response_model=RecoveryCodesOut,
    summary="Confirm enrolment with a code; returns recovery codes, shown once",
    operation_id="confirm_mfa_enrolment",
    responses=problem_responses(401, 403, 409, 422, 429),
)
def confirm(body: OtpIn, request: Request, db: DbSession, principal: CurrentPrincipal) -> Response:
    uid = _person(principal)
    throttle, key = request.app.state.throttle, f"user:{principal.username.lower()}"
    wait = throttle.retry_after(key)
    if wait:
        raise RateLimited(
            f"too many wrong codes; try again in {wait} seconds", headers={"Retry-After": str(wait)}
        )
    try:
        codes = mfa.confirm_enrolment(db, uid, body.code, request.app.state.settings.resolved_secret_key())
    except mfa.MfaInvalid:
        throttle.failed(key)
        raise
    _audit(db, principal, "mfa_enabled", "user", uid)
    return JSON({"recovery_codes": codes}, headers=_NO_STORE)


@router.post(
    "/recovery-codes",
    response_model=RecoveryCodesOut,
    summary="Replace my recovery codes (needs a current code)",
    operation_id="regenerate_recovery_codes",
    responses=problem_responses(401, 403, 409, 422),
)
def regenerate(body: OtpIn, request: Request, db: DbSession, principal: CurrentPrincipal) -> Response:
    uid = _person(principal)
    if not mfa.enrolled(db, uid):
        raise Conflict("two-factor authentication is off")
    if (
        mfa.verify_second_factor(db, uid, body.code, request.app.state.settings.resolved_secret_key())
        != "totp"
    ):
        raise invalid_field("code", "wrong or already used authenticator code", "otp")
    codes = mfa.new_recovery_codes(db, uid)
    _audit(db, principal, "mfa_recovery_codes", "user", uid)
    return JSON({"recovery_codes": codes}, headers=_NO_STORE)


@router.post(
    "/disable",
    status_code=204,
    summary="Turn two-factor login off (needs password and a current code)",
    operation_id="disable_mfa",
    responses=problem_responses(401, 403, 409, 422),
)
def disable(body: MfaDisableIn, request: Request, db: DbSession, principal: CurrentPrincipal) -> Response:
    uid = _person(principal)
    if mfa.role_requires_mfa(db, principal.role.value):
        raise Conflict("your role requires two-factor authentication")
    user = db.execute(select(User).where(User.id == uid)).scalar_one()
    if not verify_password(user.password_hash, body.password):
        raise invalid_field("password", "does not match", "password")
    if mfa.verify_second_factor(db, uid, body.code, request.app.state.settings.resolved_secret_key()) is None:
        raise invalid_field("code", "wrong or already used code", "otp")
    mfa.disable(db, uid)
    _audit(db, principal, "mfa_disabled", "user", uid)
    return Response(status_code=204)


@router.get(
    "/roles",
    response_model=dict[str, bool],
    summary="Which roles require two-factor authentication (administrators)",
    operation_id="list_mfa_role_requirements",
    responses=problem_responses(401, 403),
)
def list_roles(db: DbSession, principal: CurrentPrincipal) -> Response:
    _admin(principal)
    found = mfa.role_requirements(db)
    return JSON({r.value: found.get(r.value, False) for r in Role})


@router.put(
    "/roles",
    response_model=dict[str, bool],
    summary="Require (or stop requiring) two-factor authentication for a role (administrators)",
    operation_id="set_mfa_role_requirement",
    responses=problem_responses(401, 403, 422),
)
def set_role(body: RoleRequirementIn, db: DbSession, principal: CurrentPrincipal) -> Response:
    _admin(principal)
    mfa.set_role_requirement(db, body.role.value, body.required)
    _audit(db, principal, "mfa_role_requirement", "role", body.role.value)
    found = mfa.role_requirements(db)
    return JSON({r.value: found.get(r.value, False) for r in Role})
