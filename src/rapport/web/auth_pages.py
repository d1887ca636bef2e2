"""Login, session renewal, logout, language switch and the user's own profile."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Form, Request
from sqlalchemy import select
from starlette.responses import Response

from rapport.auth import cookies, mfa
from rapport.auth import service as auth_service
from rapport.deps import DbSession, client_ip
from rapport.errors import InvalidInput, NotAuthenticated, RateLimited
from rapport.models import Team, User
from rapport.web import i18n
from rapport.web.context import (
    REFRESH_COOKIE,
    REFRESH_PATH,
    WEB_COOKIE_PATH,
    Page,
    PageContext,
    PublicPage,
    redirect,
    safe_next,
)
from rapport.web.nav import N_
from rapport.web.routing import page_router

router = page_router()

# Password-policy reasons (security/passwords.py) as msgids, for the profile form.
POLICY_TEXT = {
    "uses too few different characters": N_("uses too few different characters"),
    "is a keyboard or alphabet sequence": N_("is a keyboard or alphabet sequence"),
    "is too common": N_("is too common"),
    "must not contain the username": N_("must not contain the username"),
}


def _same_origin(request: Request) -> bool:
    """Login CSRF: another site must not log this browser into the attacker's account.

    Browsers that send ``Sec-Fetch-Site`` are judged by it; others by ``Origin`` when they send one.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.url.netloc


def start_session(request: Request, response: Response, issued: auth_service.IssuedTokens) -> None:
    settings = request.app.state.settings
    csrf = cookies.csrf_token(settings.resolved_secret_key(), issued.access_token)
    cookies.set_session(response, request, issued.access_token, csrf, issued.expires_in, path=WEB_COOKIE_PATH)
    response.set_cookie(
        REFRESH_COOKIE,
        issued.refresh_token,
        max_age=settings.refresh_token_days * 86400,
        path=REFRESH_PATH,
        httponly=True,
        secure=cookies.is_https(request),
        samesite="lax",
    )


def end_session(request: Request, response: Response) -> None:
    cookies.clear_session(response, request, path=WEB_COOKIE_PATH)
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, httponly=True, samesite="lax")


@router.get("/login")
def login_form(ctx: PublicPage, next: str = "/") -> Response:
    return ctx.render("login.html", {"next": safe_next(next), "username": "", "error": None, "otp": False})


@router.post("/login")
def login_submit(
    request: Request,
    ctx: PublicPage,
    db: DbSession,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    otp: Annotated[str | None, Form(max_length=32)] = None,
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = safe_next(next)
    values = {"next": target, "username": username, "otp": bool(otp)}
    if not _same_origin(request):
        return ctx.render(
            "login.html", {**values, "error": ctx.gettext("Please log in from this site.")}, status=403
        )
    if not username or not password:
        error = ctx.gettext("Enter your username and password.")
        return ctx.render("login.html", {**values, "error": error}, status=422)
    try:
        issued = auth_service.login(
            db,
            request.app.state.settings,
            request.app.state.throttle,
            username,
            password,
            client_ip(request),
            getattr(request.state, "request_id", None),
            otp=otp or None,
        )
    except RateLimited as exc:
        seconds = exc.headers.get("Retry-After", "60")
        error = ctx.gettext("Too many failed logins. Try again in %(seconds)s seconds.", seconds=seconds)
        return ctx.render(
            "login.html", {**values, "error": error}, status=429, headers={"Retry-After": seconds}
        )
    except mfa.MfaRequired:
        error = ctx.gettext("Enter the code from your authenticator app.")
        return ctx.render("login.html", {**values, "otp": True, "error": error}, status=401)
    except mfa.MfaInvalid:
        error = ctx.gettext("The code is wrong, expired or already used.")
        return ctx.render("login.html", {**values, "otp": True, "error": error}, status=401)
    except NotAuthenticated:
        error = ctx.gettext("Wrong username or password, or the account is disabled.")
        return ctx.render("login.html", {**values, "error": error}, status=401)
    if issued.restriction == mfa.RESTRICTION_ENROL:
        target = "/profile"
    response = redirect(request, target)
    start_session(request, response, issued)
    return response


@router.get("/renew")
def renew(request: Request, db: DbSession, next: str = "/") -> Response:
    """The access token expired: rotate the refresh token (HttpOnly cookie, path /renew only)."""
    target = safe_next(next)
    token = request.cookies.get(REFRESH_COOKIE)
    login = f"/login?next={quote(target, safe='/')}"
    if not token:
        return redirect(request, login)
    try:
        # GET, so the unit is read-only: renew in a write unit of its own.
        with request.app.state.database.unit(write=True) as unit:
            issued = auth_service.refresh(
                unit,
                request.app.state.settings,
                token,
                client_ip(request),
                getattr(request.state, "request_id", None),
            )
    except NotAuthenticated:
        response = redirect(request, login)
        end_session(request, response)
        return response
    response = redirect(request, target)
    start_session(request, response, issued)
    return response


@router.post("/logout")
def logout(ctx: Page) -> Response:
    assert ctx.db is not None
    auth_service.logout(ctx.db, ctx.user)
    ctx.flash(ctx.gettext("You have logged out."), "info")
    response = ctx.redirect("/login")
    end_session(ctx.request, response)
    return response


@router.post("/language")
def switch_language(
    request: Request,
    language: Annotated[str, Form(max_length=16)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Language switch (also before login): a cookie that overrides profile and browser."""
    chosen = i18n.normalise_language(language) or i18n.DEFAULT_LANGUAGE
    response = redirect(request, safe_next(next) if _same_origin(request) else "/")
    response.set_cookie(
        i18n.LANG_COOKIE,
        chosen,
        max_age=365 * 86400,
        path=WEB_COOKIE_PATH,
        samesite="lax",
        secure=cookies.is_https(request),
    )
    return response


def render_profile(ctx: PageContext, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    assert ctx.db is not None
    row = ctx.db.execute(
        select(User.username, User.display_name, User.role, User.preferred_language, Team.name.label("team"))
        .outerjoin(Team, Team.id == User.team_id)
        .where(User.id == ctx.user.user_id)
    ).one()
    assert ctx.user.user_id is not None
    return ctx.render(
        "profile.html",
        {
            "me": row,
            "errors": errors or {},
            "restricted": ctx.user.extra.get("restriction") == mfa.RESTRICTION_ENROL,
            "mfa": {
                "enrolled": mfa.enrolled(ctx.db, ctx.user.user_id),
                "required": mfa.role_requires_mfa(ctx.db, ctx.user.role.value),
                "codes_left": mfa.remaining_recovery_codes(ctx.db, ctx.user.user_id),
            },
        },
        status=status,
    )


@router.get("/profile")
def profile(ctx: Page) -> Response:
    return render_profile(ctx)


@router.post("/profile/language")
def profile_language(ctx: Page, language: Annotated[str, Form(max_length=16)]) -> Response:
    chosen = i18n.normalise_language(language)
    if chosen is None:
        return render_profile(ctx, {"language": ctx.gettext("Choose one of the languages offered.")}, 422)
    assert ctx.db is not None
    auth_service.set_own_language(ctx.db, ctx.user, chosen)
    ctx.language = chosen
    ctx.flash(ctx.gettext("Your language preference is saved."))
    response = ctx.redirect("/profile")
    # The switch cookie would otherwise keep overriding the new preference.
    response.delete_cookie(i18n.LANG_COOKIE, path=WEB_COOKIE_PATH)
    return response


@router.post("/profile/password")
def profile_password(
    ctx: Page,
    current_password: Annotated[str, Form(max_length=256)] = "",
    new_password: Annotated[str, Form(max_length=256)] = "",
    confirm_password: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    errors: dict[str, str] = {}
    if not current_password:
        errors["current_password"] = ctx.gettext("Enter your current password.")
    if not new_password:
        errors["new_password"] = ctx.gettext("Enter a new password.")
    elif new_password != confirm_password:
        errors["confirm_password"] = ctx.gettext("The two new passwords differ.")
    if errors:
        return render_profile(ctx, errors, 422)
    assert ctx.db is not None
    try:
        auth_service.change_password(
            ctx.db, ctx.request.app.state.throttle, ctx.user, current_password, new_password
        )
    except RateLimited as exc:
        seconds = exc.headers.get("Retry-After", "60")
        errors["current_password"] = ctx.gettext(
            "Too many wrong passwords. Try again in %(seconds)s seconds.", seconds=seconds
        )
        return render_profile(ctx, errors, 429)
    except InvalidInput as exc:
        field = (exc.errors or [{}])[0].get("field")
        if field == "current_password":
            errors["current_password"] = ctx.gettext("This is not your current password.")
        else:
            reasons = [
                ctx.gettext(POLICY_TEXT[m["message"]])
                if m["message"] in POLICY_TEXT
                else _length(ctx, m["message"])
                for m in exc.errors or []
            ]
            errors["new_password"] = ctx.gettext("The new password %(reasons)s.", reasons="; ".join(reasons))
        return render_profile(ctx, errors, 422)
    # Every session was revoked, this one too: log in again with the new password.
    ctx.flash(ctx.gettext("Your password is changed. Log in with the new password."))
    response = ctx.redirect("/login")
    end_session(ctx.request, response)
    return response


def _length(ctx: PageContext, message: str) -> str:
    digits = "".join(ch for ch in message if ch.isdigit())
    if "at least" in message:
        return ctx.gettext("must be at least %(n)s characters long", n=digits)
    if "at most" in message:
        return ctx.gettext("must be at most %(n)s characters long", n=digits)
    return message
