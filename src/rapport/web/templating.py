"""Jinja2 environment of the workspace: autoescaped templates, gettext (newstyle), CSP headers."""

from __future__ import annotations

from contextvars import ContextVar
from gettext import GNUTranslations
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from rapport.web.i18n import translations

TEMPLATE_DIR = Path(__file__).parent / "templates"

# No inline script or style anywhere: every script and stylesheet is a file under /static.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    # Pages show personal data: no shared or browser cache may keep them.
    "Cache-Control": "no-store",
    # Same-origin requests keep their Origin (login CSRF checks); nothing leaks to other sites.
    "Referrer-Policy": "same-origin",
}

_current: ContextVar[GNUTranslations] = ContextVar("rapport_web_translations")


def _gettext(message: str) -> str:
    return _current.get().gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _current.get().ngettext(singular, plural, n)


env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,
)
env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]


def render_html(template: str, language: str, context: dict[str, Any]) -> str:
    """Render ``template`` with the catalogue of ``language`` (rendering is synchronous)."""
    token = _current.set(translations(language))
    try:
        return env.get_template(template).render(context)
    finally:
        _current.reset(token)


def html_response(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
