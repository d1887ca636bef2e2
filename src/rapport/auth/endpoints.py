"""Login, refresh, logout, the caller's own profile, password change and API keys."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rapport.access.policy import RESOURCES
from rapport.access.principal import Principal
from rapport.audit.chain import PendingEvent
from rapport.auth import cookies, service
from rapport.auth.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    MeOut,
    PasswordChange,
    RefreshIn,
    SessionOut,
    TokenOut,
)
from rapport.crud import RecordId, problem_responses
from rapport.db import record_audit
from rapport.deps import CurrentPrincipal, DbSession, client_ip
from rapport.errors import InvalidInput, NotFound, error_response, invalid_field
from rapport.http import JSON
from rapport.models import ApiKey, User
from rapport.models.base import utcnow

router = APIRouter(prefix="/auth", tags=["auth"])

# Routes anyone may call; a test proves every other route refuses anonymous callers.
PUBLIC = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/session"),
    ("GET", "/api/v1/auth/oidc/login"),
    ("GET", "/api/v1/auth/oidc/callback"),
}

Username = Annotated[str, Form(min_length=1, max_length=64)]
Password = Annotated[str, Form(min_length=1, max_length=256)]
Otp = Annotated[
    str | None,
    Form(max_length=32, description="TOTP code or recovery code, for accounts with two-factor login"),
]


def _audit(
    db: Session, principal: Principal, action: str, resource: str, record_id: int | str, outcome: str = "ok"
) -> None:
    """Credentials changing hands are security events: the chain must show who did it, and when."""
    record_audit(
        db,
        PendingEvent(
            action=action,
            resource=resource,
            record_id=str(record_id),
            outcome=outcome,
            actor_id=principal.user_id,
            actor_kind=principal.kind,
            ip=principal.ip,
            request_id=principal.request_id,
        ),
    )


def _tokens(issued: service.IssuedTokens) -> Response:
    return JSON(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "refresh_token": issued.refresh_token,
            "role": issued.role,
            "restriction": issued.restriction,
        },
        headers={"Cache-Control": "no-store"},
    )


def session_response(request: Request, issued: service.IssuedTokens) -> Response:
    """A browser session: the access token in an HttpOnly cookie, the CSRF token in the body."""
    settings = request.app.state.settings
    csrf = cookies.csrf_token(settings.resolved_secret_key(), issued.access_token)
    response = JSON(
        {
            "csrf_token": csrf,
            "expires_in": issued.expires_in,
            "role": issued.role,
            "restriction": issued.restriction,
        },
        headers={"Cache-Control": "no-store"},
    )
    cookies.set_session(response, request, issued.access_token, csrf, issued.expires_in)
    return response


@router.post(
    "/token",
    response_model=TokenOut,
    summary="Log in (OAuth2 password form)",
    operation_id="login",
    openapi_extra={"security": []},
    responses=problem_responses(401, 422, 429),
)
def login(
    request: Request, db: DbSession, username: Username, password: Password, otp: Otp = None
) -> Response:
    return _tokens(_login(request, db, username, password, otp))


def _login(
    request: Request, db: Session, username: str, password: str, otp: str | None
) -> service.IssuedTokens:
    return service.login(
        db,
        request.app.state.settings,
        request.app.state.throttle,
        username,
        password,
        client_ip(request),
        getattr(request.state, "request_id", None),
        otp=otp,
    )


@router.post(
    "/session",
    response_model=SessionOut,
    summary="Log in a browser: session cookie (HttpOnly, SameSite=Lax) and a CSRF token",
    operation_id="login_session",
    openapi_extra={"security": []},
    responses=problem_responses(401, 422, 429),
)
def login_session(
    request: Request, db: DbSession, username: Username, password: Password, otp: Otp = None
) -> Response:
    # Login CSRF: another site must not log the victim's browser into the attacker's account.
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise cookies.CsrfFailed("cross-site login refused: the Origin is not this site")
    return session_response(request, _login(request, db, username, password, otp))


@router.delete(
    "/session",
    status_code=204,
    summary="Log out a browser session (revokes it and clears the cookies)",
    operation_id="logout_session",
    responses=problem_responses(401, 403),
)
def logout_session(request: Request, db: DbSession, principal: CurrentPrincipal) -> Response:
    service.logout(db, principal)
    response = Response(status_code=204)
    cookies.clear_session(response, request)
    return response


@router.post(
    "/refresh",
    response_model=TokenOut,
    summary="Exchange a refresh token (rotates it)",
    operation_id="refresh_token",
    openapi_extra={"security": []},
    responses=problem_responses(401, 422),
)
def refresh(body: RefreshIn, request: Request, db: DbSession) -> Response:
    try:
        issued = service.refresh(
            db,
            request.app.state.settings,
            body.refresh_token,
            client_ip(request),
            getattr(request.state, "request_id", None),
        )
    except service.RefreshReused as exc:
        # Answer without raising so the unit of work commits the family's revocation; a raised
        # error would roll it back and leave the thief's freshly rotated tokens alive.
        return error_response(request, exc)
    return _tokens(issued)


@router.post(
    "/logout",
    status_code=204,
    summary="Revoke this session's tokens",
    operation_id="logout",
    responses=problem_responses(401),
)
def logout(db: DbSession, principal: CurrentPrincipal) -> Response:
    service.logout(db, principal)
    return Response(status_code=204)


@router.get(
    "/me",
    response_model=MeOut,
    summary="Who am I and what may I do",
    operation_id="me",
    responses=problem_responses(401),
)
def me(db: DbSession, principal: CurrentPrincipal) -> Response:
    user = db.execute(select(User.display_name).where(User.id == principal.user_id)).scalar_one()
    perms = {
        r: sorted(a.value for a in principal.grant(r).actions)
        for r in RESOURCES
        if principal.grant(r).actions
    }
    return JSON(
        {
            "id": principal.user_id,
            "username": principal.username,
            "display_name": user,
            "role": principal.role.value,
            "team_id": principal.team_id,
            "preferred_language": principal.language,
            "permissions": perms,
        }
    )


@router.post(
    "/password",
    status_code=204,
    summary="Change my password (signs out every session and revokes API keys)",
    operation_id="change_password",
    responses=problem_responses(401, 403, 422, 429),
)
def change_password(
    body: PasswordChange, request: Request, db: DbSession, principal: CurrentPrincipal
) -> Response:
    service.change_password(
        db, request.app.state.throttle, principal, body.current_password, body.new_password
    )
    return Response(status_code=204)


def _key_out(k: ApiKey) -> dict[str, object]:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "scopes": k.scopes,
        "expires_at": k.expires_at,
        "revoked_at": k.revoked_at,
        "created_at": k.created_at,
    }


@router.get(
    "/api-keys",
    response_model=list[ApiKeyOut],
    summary="My API keys",
    operation_id="list_api_keys",
    responses=problem_responses(401),
)
def list_keys(db: DbSession, principal: CurrentPrincipal) -> Response:
    keys = db.execute(select(ApiKey).where(ApiKey.user_id == principal.user_id).order_by(ApiKey.id)).scalars()
    return JSON([_key_out(k) for k in keys])


@router.post(
    "/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key with scopes",
    operation_id="create_api_key",
    responses=problem_responses(401, 403, 422),
)
def create_key(body: ApiKeyIn, db: DbSession, principal: CurrentPrincipal) -> Response:
    if principal.kind != "user":
        raise InvalidInput("API keys cannot create API keys")
    if body.expires_at is not None and (body.expires_at.tzinfo is None or body.expires_at <= utcnow()):
        raise invalid_field("expires_at", "must be in the future, with a zone", "datetime")
    assert principal.user_id is not None
    key_id, secret = service.create_api_key(db, principal.user_id, body.name, body.scopes, body.expires_at)
    _audit(db, principal, "create", "api_key", key_id)
    key = db.execute(select(ApiKey).where(ApiKey.id == key_id)).scalar_one()
    return JSON({**_key_out(key), "key": secret}, status_code=201)


@router.delete(
    "/api-keys/{record_id}",
    status_code=204,
    summary="Revoke one of my API keys",
    operation_id="revoke_api_key",
    responses=problem_responses(401, 404, 422),
)
def revoke_key(record_id: RecordId, db: DbSession, principal: CurrentPrincipal) -> Response:
    done = db.execute(
        update(ApiKey)
        .where(ApiKey.id == record_id, ApiKey.user_id == principal.user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        raise NotFound(f"api key {record_id} not found")
    _audit(db, principal, "revoke", "api_key", record_id)
    return Response(status_code=204)
