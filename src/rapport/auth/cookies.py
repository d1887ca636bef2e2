"""Browser sessions: the access token in an HttpOnly cookie, and a CSRF token bound to it.

A request authenticated by the cookie that changes anything (any method but GET, HEAD, OPTIONS)
must echo the session's CSRF token in the ``X-CSRF-Token`` header. The token is an HMAC of the
session token under the server secret, so it cannot be forged or reused with another session,
and the server keeps no state for it (a signed double-submit). Requests with ``Authorization``
(bearer tokens, API keys) carry no ambient credential and are exempt.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from rapport.errors import RapportError

SESSION_COOKIE = "rapport_session"
CSRF_COOKIE = "rapport_csrf"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/api"


class CsrfFailed(RapportError):
    status, slug, title = 403, "csrf-failed", "CSRF token missing or wrong"


def csrf_token(server_secret: str, session_token: str) -> str:
    return hmac.new(
        server_secret.encode(), b"csrf:" + hashlib.sha256(session_token.encode()).digest(), hashlib.sha256
    ).hexdigest()


def check_csrf(request: Request, server_secret: str, session_token: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent, csrf_token(server_secret, session_token)):
        raise CsrfFailed(
            f"requests authenticated by the session cookie must send the CSRF token in {CSRF_HEADER}"
        )


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(
    response: Response, request: Request, token: str, csrf: str, max_age: int, path: str = COOKIE_PATH
) -> None:
    """``path``: ``/api`` for API browser sessions, ``/`` for the web workspace (pages and API)."""
    secure = is_https(request)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, path=path, httponly=True, secure=secure, samesite="lax"
    )
    # Readable by the page's script so it can echo it in the header; useless without the session.
    response.set_cookie(
        CSRF_COOKIE, csrf, max_age=max_age, path=path, httponly=False, secure=secure, samesite="lax"
    )


def clear_session(response: Response, request: Request, path: str = COOKIE_PATH) -> None:
    secure = is_https(request)
    for name, http_only in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path=path, httponly=http_only, secure=secure, samesite="lax")
