"""Domain errors and their one translation into RFC 9457 problem details."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("rapport")

PROBLEM_BASE = "https://rapport.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class RapportError(Exception):
    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra


class NotAuthenticated(RapportError):
    status, slug, title = 401, "not-authenticated", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(RapportError):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(RapportError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(RapportError):
    status, slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(RapportError):
    status, slug, title = 412, "precondition-failed", "Record changed since it was read"


class PayloadTooLarge(RapportError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class InvalidInput(RapportError):
    status, slug, title = 422, "invalid-input", "Invalid input"


def invalid_field(field: str, message: str, kind: str = "value_error", where: str = "body") -> InvalidInput:
    """A 422 naming one input field; ``field`` is dotted, list positions included (``lines.3.quantity``)."""
    loc: list[str | int] = [where, *(int(p) if p.isdigit() else p for p in field.split("."))]
    return InvalidInput(
        f"{field}: {message}",
        errors=[{"loc": loc, "field": field, "message": message, "type": kind}],
    )


class PreconditionRequired(RapportError):
    status, slug, title = 428, "precondition-required", "If-Match header required"


class RateLimited(RapportError):
    status, slug, title = 429, "rate-limited", "Too many attempts"


class Unavailable(RapportError):
    status, slug, title = 503, "unavailable", "Temporarily unavailable"


def problem_response(
    request: Request | None,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        rid = getattr(request.state, "request_id", None)
        if rid:
            body["request_id"] = rid
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def error_response(request: Request | None, exc: RapportError) -> Response:
    return problem_response(
        request,
        exc.status,
        exc.slug,
        exc.title,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _clean_loc(loc: Any) -> list[str | int]:
    if not isinstance(loc, (list, tuple)):
        return [str(loc)]
    # Only the leading segment says where the value came from; a field may itself be named
    # "body" (an interaction's text) and must keep its name.
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return parts


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append(
            {
                "loc": [str(p) if not isinstance(p, int) else p for p in err.get("loc", ())],
                "field": ".".join(str(p) for p in _clean_loc(err.get("loc", ()))),
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "invalid")),
            }
        )
    return out


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("not-authenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RapportError)
    async def _domain(request: Request, exc: RapportError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(exc)
        first = errors[0] if errors else {"field": "", "message": "invalid"}
        where = first["field"] or ".".join(str(p) for p in first.get("loc", []))
        return problem_response(
            request,
            422,
            "invalid-input",
            "Invalid input",
            f"{where}: {first['message']}" if where else str(first["message"]),
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "error parsing the body" (e.g. JSON that is not UTF-8): the same class of
            # fault as malformed JSON, which FastAPI already reports as 422, so answer alike.
            return problem_response(
                request,
                422,
                "invalid-input",
                "Invalid input",
                "body: could not be parsed; send UTF-8 encoded JSON",
                errors=[
                    {
                        "loc": ["body"],
                        "field": "body",
                        "message": "could not be parsed",
                        "type": "body_invalid",
                    }
                ],
            )
        slug, title = _STATUS_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem_response(
            request, exc.status_code, slug, title, detail, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the cause for operators; the client learns only that it failed and the request id.
        log.exception("unhandled error", exc_info=exc)
        return problem_response(
            request,
            500,
            "internal-error",
            "Internal error",
            "The server could not complete the request; quote the request id when reporting it.",
        )
