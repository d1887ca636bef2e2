"""Single sign-on routes: start at /auth/oidc/login, come back at /auth/oidc/callback."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.responses import RedirectResponse

from rapport.audit.chain import PendingEvent
from rapport.auth import cookies, oidc, service
from rapport.auth.endpoints import session_response
from rapport.auth.schemas import SessionOut
from rapport.crud import problem_responses
from rapport.db import Database, record_audit
from rapport.deps import client_ip

router = APIRouter(prefix="/auth/oidc", tags=["auth"])


def client(request: Request) -> oidc.OidcClient:
    """One client per application (it caches the provider's metadata and keys)."""
    found: oidc.OidcClient | None = getattr(request.app.state, "oidc", None)
    if found is None:
        found = oidc.OidcClient(request.app.state.settings, getattr(request.app.state, "oidc_http", None))
        request.app.state.oidc = found
    return found


@router.get(
    "/login",
    status_code=302,
    summary="Start single sign-on: redirects to the identity provider",
    operation_id="oidc_login",
    openapi_extra={"security": []},
    responses=problem_responses(401, 404, 422),
)
def login(
    request: Request,
    prompt: Annotated[
        Literal["login", "consent", "select_account"] | None,
        Query(description="Passed to the provider, e.g. 'login' to ask for the password again"),
    ] = None,
) -> Response:
    c = client(request)
    st = oidc.new_login_state(time.time())
    response = RedirectResponse(c.authorization_url(st, prompt), status_code=302)
    response.set_cookie(
        oidc.STATE_COOKIE,
        oidc.pack_state(st, request.app.state.settings.resolved_secret_key()),
        max_age=oidc.STATE_TTL_SECONDS,
        path=oidc.STATE_COOKIE_PATH,
        httponly=True,
        secure=cookies.is_https(request),
        samesite="lax",  # the provider sends the browser back with a top-level GET
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(
    "/callback",
    response_model=SessionOut,
    summary="Finish single sign-on: sets the session cookie",
    operation_id="oidc_callback",
    openapi_extra={"security": []},
    responses=problem_responses(401, 403, 404, 422),
)
def callback(
    request: Request,
    state: Annotated[str, Query(max_length=200)],
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    settings = request.app.state.settings
    c = client(request)
    ip, rid = client_ip(request), getattr(request.state, "request_id", None)
    database: Database = request.app.state.database
    # A GET that writes (identity link, tokens, audit): its own write unit, in this worker thread.
    with database.unit(write=True) as session:
        try:
            st = oidc.unpack_state(
                request.cookies.get(oidc.STATE_COOKIE), settings.resolved_secret_key(), time.time()
            )
            if not _same(state, st.state):
                raise oidc.SsoFailed("state mismatch: this answer does not belong to the login started here")
            if error or not code:
                raise oidc.SsoFailed(f"the identity provider reported {error or 'no code'}")
            claims = c.validate(c.exchange(code, st), st.nonce)
            user = oidc.find_user(session, settings, c.issuer, claims)
        except (oidc.SsoFailed, oidc.SsoUnknownUser) as exc:
            record_audit(
                session,
                PendingEvent(
                    action="login",
                    resource="session",
                    record_id=None,
                    outcome="denied",
                    actor_id=None,
                    actor_kind="anonymous",
                    ip=ip,
                    request_id=rid,
                    details={"reason": exc.slug, "method": "oidc"},
                ),
            )
            raise
        issued = service.login_user(session, settings, user, ip, rid, method="oidc")
    response = session_response(request, issued)
    response.delete_cookie(oidc.STATE_COOKIE, path=oidc.STATE_COOKIE_PATH, httponly=True, samesite="lax")
    return response


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())
