"""Two-factor authentication of the logged-in user, from the profile page.

Start enrolment (a new secret, shown once as a QR code of its otpauth URI and as text), confirm it
with a code from the authenticator app (the recovery codes are shown once, on that answer only),
and turn it off with the password and a current code. The same rapport.auth.mfa functions, audit
events and wrong-code throttle as /api/v1/auth/2fa; every answer that shows a secret or recovery
codes is ``no-store``.
"""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import Form
from markupsafe import Markup
from sqlalchemy import select
from starlette.responses import Response

from rapport.auth import mfa
from rapport.auth.endpoints import _audit
from rapport.errors import Conflict
from rapport.models import User
from rapport.security.passwords import verify_password
from rapport.web.auth_pages import render_profile
from rapport.web.context import Page, PageContext
from rapport.web.routing import page_router

router = page_router()

_NO_STORE = {"Cache-Control": "no-store"}


def _server_secret(ctx: PageContext) -> str:
    return str(ctx.request.app.state.settings.resolved_secret_key())


def _uid(ctx: PageContext) -> int:
    assert ctx.user.user_id is not None  # pages are for people; API keys never get a page session
    return ctx.user.user_id


def qr_svg(uri: str, title: str) -> Markup:
    """The otpauth URI as an inline SVG QR code (no image request, nothing leaves the page)."""
    code = segno.make(uri, error="m")
    svg = code.svg_inline(scale=5, dark="#000", light="#fff", title=title, svgclass="mfa-qr")
    return Markup(svg)  # noqa: S704 - segno's own markup; the URI is escaped inside it


def _grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _enrol_page(ctx: PageContext, secret: str, error: str | None = None, status: int = 200) -> Response:
    uri = mfa.provisioning_uri(secret, ctx.user.username)
    return ctx.render(
        "mfa_enrol.html",
        {
            "qr": qr_svg(uri, ctx.gettext("QR code for your authenticator app")),
            "secret": _grouped(secret),
            "uri": uri,
            "error": error,
        },
        status=status,
        headers=_NO_STORE,
    )


@router.post("/profile/2fa/enrol")
def enrol(ctx: Page) -> Response:
    assert ctx.db is not None
    uid = _uid(ctx)
    try:
        secret, _ = mfa.begin_enrolment(ctx.db, uid, ctx.user.username, _server_secret(ctx))
    except Conflict:
        ctx.flash(ctx.gettext("Two-factor authentication is already on."), "error")
        return ctx.redirect("/profile")
    _audit(ctx.db, ctx.user, "mfa_enrol_start", "user", uid)
    return _enrol_page(ctx, secret)


@router.post("/profile/2fa/confirm")
def confirm(ctx: Page, code: Annotated[str, Form(max_length=32)] = "") -> Response:
    assert ctx.db is not None
    uid = _uid(ctx)
    secret = mfa.pending_secret(ctx.db, uid, _server_secret(ctx))
    if secret is None:
        ctx.flash(ctx.gettext("No enrolment in progress; start again."), "error")
        return ctx.redirect("/profile")
    throttle, key = ctx.request.app.state.throttle, f"user:{ctx.user.username.lower()}"
    wait = throttle.retry_after(key)
    if wait:
        message = ctx.gettext("Too many wrong codes. Try again in %(seconds)s seconds.", seconds=wait)
        return _enrol_page(ctx, secret, message, 429)
    try:
        codes = mfa.confirm_enrolment(ctx.db, uid, code.strip().replace(" ", ""), _server_secret(ctx))
    except mfa.MfaInvalid:
        throttle.failed(key)
        message = ctx.gettext(
            "The code does not match. Check the clock of your device and try the next code."
        )
        return _enrol_page(ctx, secret, message, 422)
    _audit(ctx.db, ctx.user, "mfa_enabled", "user", uid)
    restricted = ctx.user.extra.get("restriction") == mfa.RESTRICTION_ENROL
    return ctx.render("mfa_codes.html", {"codes": codes, "log_in_again": restricted}, headers=_NO_STORE)


@router.post("/profile/2fa/disable")
def disable(
    ctx: Page,
    password: Annotated[str, Form(max_length=256)] = "",
    code: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    assert ctx.db is not None
    uid = _uid(ctx)
    errors: dict[str, str] = {}
    if not mfa.enrolled(ctx.db, uid):
        ctx.flash(ctx.gettext("Two-factor authentication is already off."), "error")
        return ctx.redirect("/profile")
    if mfa.role_requires_mfa(ctx.db, ctx.user.role.value):
        errors["mfa_code"] = ctx.gettext(
            "Your role requires two-factor authentication; it cannot be turned off."
        )
        return render_profile(ctx, errors, 409)
    user = ctx.db.execute(select(User.password_hash).where(User.id == uid)).scalar_one()
    if not verify_password(user, password):
        errors["mfa_password"] = ctx.gettext("This is not your current password.")
    elif mfa.verify_second_factor(ctx.db, uid, code, _server_secret(ctx)) is None:
        errors["mfa_code"] = ctx.gettext("The code is wrong, expired or already used.")
    if errors:
        return render_profile(ctx, errors, 422)
    mfa.disable(ctx.db, uid)
    _audit(ctx.db, ctx.user, "mfa_disabled", "user", uid)
    ctx.flash(ctx.gettext("Two-factor authentication is off."))
    return ctx.redirect("/profile")
