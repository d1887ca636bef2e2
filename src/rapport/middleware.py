"""Pure ASGI middleware: request ids and the request-body size limit (cheap on the hot path)."""

from __future__ import annotations

import itertools
import secrets

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapport.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE

# Request ids need to be unique, not secret: a per-process random prefix plus a counter avoids a
# urandom system call on every request (measured at ~10% of a cached GET).
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)


def _next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


class RequestContextMiddleware:
    """Gives every request an id (or keeps a sane one from the client) and echoes it back."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        length = None
        for name, value in scope["headers"]:
            if name == b"x-request-id" and 8 <= len(value) <= 64 and value.isascii():
                candidate = value.decode()
                if candidate.replace("-", "").isalnum():
                    rid = candidate
            elif name == b"content-length":
                length = value
        rid = rid or _next_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(scope, send_with_id, rid)
            return

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    too_large = True
                    raise _BodyTooLarge(self.max_body)
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            await self._too_large(scope, send_with_id, rid)

    async def _too_large(self, scope: Scope, send: Send, rid: str) -> None:
        body = orjson.dumps(
            {
                "type": PROBLEM_BASE + "payload-too-large",
                "title": "Request body too large",
                "status": 413,
                "detail": f"Request bodies are limited to {self.max_body} bytes.",
                "instance": scope.get("path", ""),
                "request_id": rid,
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(HTTPException):
    # An HTTPException, because FastAPI turns any other error raised while reading the body into
    # a 400; this one it re-raises, and the problem handler answers 413.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request bodies are limited to {limit} bytes.")


# The API serves JSON and CSV only: nothing may be loaded, framed or submitted on its behalf.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The interactive documentation page loads Swagger UI from /static/vendor (the npm package
# swagger-ui-dist, no CDN) and runs one inline script.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=(), interest-cohort=()"
)
DOCS_PATHS = frozenset({"/api/v1/docs", "/api/v1/docs/oauth2-redirect", "/api/v1/openapi.json"})


class SecurityHeadersMiddleware:
    """Security headers on every response; ``Cache-Control: no-store`` on every API response.

    API responses carry personal data (records, exports, tokens): no shared or browser cache may
    keep them. HSTS is sent only over https, where it means something.
    """

    def __init__(self, app: ASGIApp, hsts_seconds: int) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", PERMISSIONS_POLICY.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]
        self.api = [*common, (b"content-security-policy", API_CSP.encode())]
        self.docs = [*common, (b"content-security-policy", DOCS_CSP.encode())]
        self.hsts = (b"strict-transport-security", f"max-age={hsts_seconds}; includeSubDomains".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        docs = path in DOCS_PATHS
        extra = list(self.docs if docs else self.api)
        if scope.get("scheme") == "https":
            extra.append(self.hsts)
        no_store = path.startswith("/api/") and not docs

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if no_store:
                    headers = [(k, v) for k, v in headers if k.lower() not in (b"cache-control", b"expires")]
                    headers.append((b"cache-control", b"no-store"))
                names = {k.lower() for k, _ in headers}
                message["headers"] = [*headers, *(h for h in extra if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
