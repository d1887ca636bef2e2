"""Page routes: friendly HTML answers for login redirects, 403, 404 and other errors.

Every page router is built with :func:`page_router`; its routes are left out of the OpenAPI
schema and any error a handler or dependency raises becomes an HTML page (or, for an HTMX
request, a small fragment) instead of an RFC 9457 problem document.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response

from rapport.errors import Forbidden, NotFound, RapportError, RateLimited
from rapport.web import i18n
from rapport.web.context import CsrfRejected, LoginRequired, PageContext, is_htmx, login_redirect
from rapport.web.nav import N_

log = logging.getLogger("rapport.web")

# status -> (title msgid, explanation msgid)
ERROR_TEXT: dict[int, tuple[str, str]] = {
    400: (N_("Something is wrong with the request"), N_("Please check what you entered and try again.")),
    403: (N_("Not allowed"), N_("Your role does not allow this. Ask an administrator if you need it.")),
    404: (
        N_("Not found"),
        N_("This page or record does not exist, or it is outside the records you may see."),
    ),
    409: (N_("Conflict"), N_("Someone else changed this record. Reload it and try again.")),
    422: (N_("Invalid input"), N_("Please check what you entered and try again.")),
    429: (N_("Too many attempts"), N_("Please wait a moment and try again.")),
    500: (N_("Something went wrong"), N_("The error was logged. Please try again later.")),
}


def error_page(request: Request, status: int, detail: str | None = None) -> Response:
    principal = getattr(request.state, "principal", None)
    ctx = PageContext(
        request=request,
        language=i18n.choose_language(request, principal.language if principal else None),
        principal=principal,
    )
    title, text = ERROR_TEXT.get(status, ERROR_TEXT[400] if status < 500 else ERROR_TEXT[500])
    template = "error_fragment.html" if is_htmx(request) else "error.html"
    return ctx.render(
        template, {"status": status, "title": title, "text": text, "detail": detail}, status=status
    )


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as exc:
                return login_redirect(request, exc.renew)
            except CsrfRejected:
                return error_page(request, 403)
            except (NotFound, Forbidden) as exc:
                # Out of scope and missing look the same: a 404 never confirms a record exists.
                return error_page(request, 404 if isinstance(exc, NotFound) else 403)
            except RateLimited as exc:
                return error_page(request, 429, exc.detail)
            except RapportError as exc:
                return error_page(request, exc.status)
            except RequestValidationError:
                return error_page(request, 422)

        return page_handler


def page_router(**kwargs: Any) -> APIRouter:
    """A router for pages: HTML error handling, hidden from the OpenAPI schema."""
    return APIRouter(route_class=PageRoute, include_in_schema=False, **kwargs)
