"""What every page handler gets: the caller, the data-access layer, language, CSRF and flashes.

Pages authenticate with the same session token as the API's browser sessions (an HttpOnly,
SameSite=Lax cookie, here with path ``/`` so the pages and the API both receive it) and resolve
it with the same auth service, so a page sees exactly what the API would show the caller.
Changes (any method but GET/HEAD) must carry the session's CSRF token: the ``X-CSRF-Token``
header (HTMX sends it on every request, see base.html) or a ``csrf_token`` form field.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from gettext import GNUTranslations
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import HTMLResponse, RedirectResponse, Response

from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.auth import cookies
from rapport.auth import service as auth_service
from rapport.deps import DbSession, client_ip
from rapport.errors import NotAuthenticated
from rapport.security.tokens import ACCESS_PREFIX
from rapport.web import i18n
from rapport.web.nav import ROLE_LABELS, NavItem, visible_nav
from rapport.web.templating import html_response, render_html

WEB_COOKIE_PATH = "/"
REFRESH_COOKIE = "rapport_refresh"
REFRESH_PATH = "/renew"  # the refresh token travels only to the renewal route
FLASH_COOKIE = "rapport_flash"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No usable session: the page answers with a redirect to the login (or renewal) page."""

    def __init__(self, renew: bool) -> None:
        super().__init__("login required")
        self.renew = renew


class CsrfRejected(Exception):
    pass


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def safe_next(target: str | None) -> str:
    """Only local paths: ``next`` must never send the user to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def current_path(request: Request) -> str:
    if is_htmx(request):
        url = request.headers.get("hx-current-url", "")
        base = str(request.base_url).rstrip("/")
        if url.startswith(base):
            return safe_next(url[len(base) :] or "/")
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def redirect(request: Request, location: str, status: int = 303) -> Response:
    """A redirect that also works for HTMX requests (they follow ``HX-Redirect``)."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": location, "Cache-Control": "no-store"})
    return RedirectResponse(location, status_code=status, headers={"Cache-Control": "no-store"})


def login_redirect(request: Request, renew: bool) -> Response:
    nxt = quote(current_path(request), safe="/")
    return redirect(request, f"{'/renew' if renew else '/login'}?next={nxt}")


@dataclass
class PageContext:
    """Passed to templates as ``ctx``; also what page handlers work with."""

    request: Request
    language: str
    principal: Principal | None = None
    db: Session | None = None
    records: Records | None = None
    csrf: str = ""
    display_name: str = ""
    flashes: list[tuple[str, str]] = field(default_factory=list)
    _flash_out: list[tuple[str, str]] = field(default_factory=list)

    @property
    def t(self) -> GNUTranslations:
        return i18n.translations(self.language)

    @property
    def fmt(self) -> i18n.Formatter:
        return _formatter(self.language)

    def gettext(self, message: str, **values: Any) -> str:
        text = self.t.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: Any) -> str:
        text = self.t.ngettext(singular, plural, n)
        return text % {"num": n, **values}

    @property
    def recs(self) -> Records:
        """The data-access layer (pages with a session only)."""
        assert self.records is not None
        return self.records

    @property
    def user(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def nav(self) -> list[NavItem]:
        return visible_nav(self.principal) if self.principal else []

    def flash(self, message: str, level: str = "success") -> None:
        """Show ``message`` (already translated) on the next page this browser renders."""
        self._flash_out.append((level, message))

    def render(
        self,
        template: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        values = {
            "ctx": self,
            "request": self.request,
            "fmt": self.fmt,
            "languages": i18n.LANGUAGE_NAMES,
            "role_labels": ROLE_LABELS,
            **(context or {}),
        }
        response = html_response(render_html(template, self.language, values), status, headers)
        self.finish(response)
        return response

    def redirect(self, location: str) -> Response:
        response = redirect(self.request, location)
        self.finish(response)
        return response

    def finish(self, response: Response) -> None:
        """Store pending flashes in the cookie, or clear the ones this response showed."""
        if self._flash_out:
            response.set_cookie(
                FLASH_COOKIE,
                quote(json.dumps(self._flash_out, ensure_ascii=True)),
                path=WEB_COOKIE_PATH,
                httponly=True,
                samesite="lax",
                secure=cookies.is_https(self.request),
            )
        elif self.flashes:
            response.delete_cookie(FLASH_COOKIE, path=WEB_COOKIE_PATH)


_FORMATTERS: dict[str, i18n.Formatter] = {}


def _formatter(language: str) -> i18n.Formatter:
    f = _FORMATTERS.get(language)
    if f is None:
        f = _FORMATTERS[language] = i18n.Formatter(language)
    return f


def _read_flashes(request: Request) -> list[tuple[str, str]]:
    from urllib.parse import unquote

    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        items = json.loads(unquote(raw))
        return [(str(level), str(text)) for level, text in items][:5]
    except (ValueError, TypeError):
        return []


async def _check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get(cookies.CSRF_HEADER, "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else ""
    if not sent or not hmac.compare_digest(sent, expected):
        raise CsrfRejected()


async def public_context(request: Request) -> PageContext:
    """Pages anyone may open (login): language only."""
    return PageContext(
        request=request, language=i18n.choose_language(request, None), flashes=_read_flashes(request)
    )


async def page_context(request: Request, db: DbSession) -> PageContext:
    """Pages that need a logged-in user; raises :class:`LoginRequired` otherwise."""
    token = request.cookies.get(cookies.SESSION_COOKIE)
    if not token or not token.startswith(ACCESS_PREFIX):
        raise LoginRequired(renew=False)
    try:
        principal = auth_service.resolve(
            db, token, ip=client_ip(request), request_id=getattr(request.state, "request_id", None)
        )
    except NotAuthenticated:
        raise LoginRequired(renew=True) from None
    csrf = cookies.csrf_token(request.app.state.settings.resolved_secret_key(), token)
    if request.method not in _SAFE:
        await _check_csrf(request, csrf)
    request.state.principal = principal
    return PageContext(
        request=request,
        language=i18n.choose_language(request, principal.language),
        principal=principal,
        db=db,
        records=Records(db, principal, request.app.state.cursors),
        csrf=csrf,
        display_name=principal.username,
        flashes=_read_flashes(request),
    )


Page = Annotated[PageContext, Depends(page_context)]
PublicPage = Annotated[PageContext, Depends(public_context)]
