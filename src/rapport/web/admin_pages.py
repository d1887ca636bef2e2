"""Administration pages: users (create, disable/enable, role and team), teams, what each role
may see, and the audit trail with filters and the chain-verification status.

Administrators only (:func:`rapport.admin.service.require_admin`, derived from the policy):
anyone else gets the workspace's friendly 403 page, and the refusal is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Form, Query, Request
from starlette.responses import Response

from rapport.access.policy import RESOURCES, Role
from rapport.admin import service
from rapport.errors import Conflict, InvalidInput
from rapport.web.context import Page, PageContext
from rapport.web.dashboard_pages import ROLES, label
from rapport.web.form_errors import field_errors
from rapport.web.nav import N_, NavItem, register_nav
from rapport.web.routing import page_router

router = page_router(prefix="/admin")
# Shown exactly to whom the pages it leads to open for: the same policy check as every handler
# here (manage all users and teams, read the whole audit trail), not an unrelated resource.
register_nav(NavItem("admin", N_("Administration"), "/admin/users", order=90, allowed=service.can_administer))

Cursor = Annotated[str | None, Query(max_length=512)]
LANGUAGE_CHOICES = (("zh-CN", "中文"), ("en", "English"))
ACTIONS: dict[str, str] = {
    "read": N_("read"),
    "create": N_("create"),
    "update": N_("update"),
    "delete": N_("delete"),
    "export": N_("export"),
    "assign": N_("assign"),
}
SCOPES: dict[str, str] = {"own": N_("own records"), "team": N_("team's records"), "all": N_("all records")}
RESOURCE_NAMES: dict[str, str] = {
    "customer": N_("Customers"),
    "organisation": N_("Organisations"),
    "contact_point": N_("Contact points"),
    "product": N_("Products"),
    "order": N_("Orders"),
    "order_line": N_("Order lines"),
    "interaction": N_("Interactions"),
    "task": N_("Tasks"),
    "user": N_("Users"),
    "team": N_("Teams"),
    "api_key": N_("API keys"),
    "custom_field": N_("Custom fields"),
    "audit": N_("Audit trail"),
    "analytics": N_("Analytics"),
    "data_subject_request": N_("Data subject requests"),
    "consent": N_("Consents"),
    "sharing_agreement": N_("Data sharing agreements"),
    "privacy_complaint": N_("Privacy complaints"),
    "webhook": N_("Webhooks"),
    "segment": N_("Segments"),
    # Audit-only resources: sign-ins and refused administration pages.
    "session": N_("Sign-ins"),
    "auth": N_("Authentication"),
    "administration": N_("Administration"),
}
OUTCOMES: dict[str, str] = {"ok": N_("ok"), "denied": N_("denied"), "failed": N_("failed")}
USER_FIELDS = ("username", "display_name", "email", "role", "team_id", "preferred_language", "password")
AUDIT_FIELDS = ("actor", "action", "resource", "outcome", "at_from", "at_to")


def chain_cache(request: Request) -> service.ChainStatusCache:
    cache: service.ChainStatusCache | None = getattr(request.app.state, "audit_chain_status", None)
    if cache is None:
        cache = request.app.state.audit_chain_status = service.ChainStatusCache()
    return cache


def _common(ctx: PageContext, tab: str) -> dict[str, Any]:
    return {
        "nav": "admin",
        "tab": tab,
        "role_label": lambda key: label(ctx, ROLES, key),
        "roles": [(r.value, ctx.gettext(ROLES[r.value])) for r in Role],
        "languages_offered": LANGUAGE_CHOICES,
    }


# -- users ------------------------------------------------------------------------------------


def _users_page(
    ctx: PageContext,
    params: dict[str, Any],
    cursor: str | None,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    filter_errors: dict[str, str] = {}
    try:
        page = service.list_users(ctx.recs, params, cursor=cursor)
    except InvalidInput as exc:
        filter_errors = field_errors(ctx, exc.errors, ("q", "role", "team_id", "is_active"))
        page = service.list_users(ctx.recs, {}, cursor=None)
        status = 422
    teams = service.team_names(ctx.recs)
    return ctx.render(
        "admin/users.html",
        {
            **_common(ctx, "users"),
            "items": page.items,
            "next_cursor": page.next_cursor,
            "teams": teams,
            "team_options": [(str(k), v) for k, v in teams.items()],
            "params": params,
            "filter_errors": filter_errors,
            "form": form or {"preferred_language": ctx.language, "role": "sales_rep"},
            "errors": errors or {},
        },
        status=status,
    )


@router.get("")
def admin_home(ctx: Page) -> Response:
    service.require_admin(ctx.recs)
    return ctx.redirect("/admin/users")


@router.get("/users")
def users_page(
    ctx: Page,
    q: Annotated[str | None, Query(max_length=64)] = None,
    role: Annotated[str | None, Query(max_length=32)] = None,
    team_id: Annotated[str | None, Query(max_length=20)] = None,
    is_active: Annotated[str | None, Query(max_length=5)] = None,
    cursor: Cursor = None,
) -> Response:
    service.require_admin(ctx.recs)
    params = {"q": q, "role": role, "team_id": team_id, "is_active": is_active}
    return _users_page(ctx, params, cursor)


@router.post("/users")
def create_user(
    ctx: Page,
    username: Annotated[str, Form(max_length=200)] = "",
    display_name: Annotated[str, Form(max_length=400)] = "",
    email: Annotated[str, Form(max_length=400)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    team_id: Annotated[str, Form(max_length=20)] = "",
    preferred_language: Annotated[str, Form(max_length=16)] = "zh-CN",
    password: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    service.require_admin(ctx.recs)
    form = {
        "username": username.strip(),
        "display_name": display_name,
        "email": email.strip(),
        "role": role,
        "team_id": team_id,
        "preferred_language": preferred_language,
        "password": password,
    }
    try:
        row = service.create_user(ctx.recs, form)
    except (InvalidInput, Conflict) as exc:
        errors = field_errors(ctx, exc.errors, USER_FIELDS)
        if not errors:
            errors = {"__all__": ctx.gettext("This value is already used.")}
        form["password"] = ""  # never echo a password back into the page
        return _users_page(ctx, {}, None, form=form, errors=errors, status=422)
    ctx.flash(ctx.gettext("User %(name)s created.", name=row["username"]))
    return ctx.redirect(f"/admin/users/{row['id']}")


def _user_page(
    ctx: PageContext,
    user: dict[str, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    teams = service.team_names(ctx.recs)
    return ctx.render(
        "admin/user.html",
        {
            **_common(ctx, "users"),
            "user": user,
            "team_options": [(str(k), v) for k, v in teams.items()],
            "team_name": teams.get(user.get("team_id") or 0),
            "form": form or {k: ("" if user.get(k) is None else str(user.get(k))) for k in USER_FIELDS},
            "errors": errors or {},
            "is_self": user["id"] == ctx.user.user_id,
        },
        status=status,
    )


@router.get("/users/{record_id}")
def user_page(ctx: Page, record_id: int) -> Response:
    return _user_page(ctx, service.get_user(ctx.recs, record_id))


@router.post("/users/{record_id}")
def update_user(
    ctx: Page,
    record_id: int,
    version: Annotated[int, Form(ge=1)],
    display_name: Annotated[str | None, Form(max_length=400)] = None,
    email: Annotated[str | None, Form(max_length=400)] = None,
    role: Annotated[str | None, Form(max_length=32)] = None,
    team_id: Annotated[str | None, Form(max_length=20)] = None,
    preferred_language: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    current = service.get_user(ctx.recs, record_id)
    posted = {
        "display_name": display_name,
        "email": email.strip() if email is not None else None,
        "role": role,
        "team_id": team_id,
        "preferred_language": preferred_language,
    }

    def shown(key: str) -> str:
        return "" if current.get(key) is None else str(current.get(key))

    form = {k: shown(k) if v is None else v for k, v in posted.items()}
    # Only fields the form sent and changed: a PATCH of unchanged values would still bump the version.
    changes = {k: v for k, v in posted.items() if v is not None and v != shown(k)}
    if not changes:
        ctx.flash(ctx.gettext("Nothing changed."), "info")
        return ctx.redirect(f"/admin/users/{record_id}")
    try:
        service.update_user(ctx.recs, record_id, changes, version)
    except InvalidInput as exc:
        return _user_page(
            ctx, current, form=form, errors=field_errors(ctx, exc.errors, USER_FIELDS), status=422
        )
    except Conflict:
        msg = ctx.gettext("This is the last active administrator; make another user admin first.")
        return _user_page(ctx, current, form=form, errors={"role": msg}, status=409)
    ctx.flash(ctx.gettext("Changes saved."))
    return ctx.redirect(f"/admin/users/{record_id}")


@router.post("/users/{record_id}/active")
def set_active(ctx: Page, record_id: int, active: Annotated[str, Form(pattern="^(true|false)$")]) -> Response:
    current = service.get_user(ctx.recs, record_id)
    turn_on = active == "true"
    if not turn_on and record_id == ctx.user.user_id:
        ctx.flash(ctx.gettext("You cannot disable your own account."), "error")
        return ctx.redirect(f"/admin/users/{record_id}")
    try:
        row = service.set_active(ctx.recs, record_id, turn_on)
    except Conflict:
        ctx.flash(
            ctx.gettext("This is the last active administrator; make another user admin first."), "error"
        )
        return ctx.redirect(f"/admin/users/{record_id}")
    text = (
        N_("User %(name)s enabled.") if turn_on else N_("User %(name)s disabled; their sessions were ended.")
    )
    ctx.flash(ctx.gettext(text, name=current["username"]))
    return ctx.redirect(f"/admin/users/{row['id']}")


# -- teams ------------------------------------------------------------------------------------


def _teams_page(
    ctx: PageContext,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return ctx.render(
        "admin/teams.html",
        {
            **_common(ctx, "teams"),
            "teams": service.list_teams(ctx.recs),
            "form": form or {},
            "errors": errors or {},
        },
        status=status,
    )


@router.get("/teams")
def teams_page(ctx: Page) -> Response:
    return _teams_page(ctx)


@router.post("/teams")
def create_team(
    ctx: Page,
    name: Annotated[str, Form(max_length=300)] = "",
    description: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    form = {"name": name, "description": description}
    try:
        service.create_team(ctx.recs, form)
    except (InvalidInput, Conflict) as exc:
        errors = field_errors(
            ctx, exc.errors or [{"field": "name", "type": "unique"}], ("name", "description")
        )
        return _teams_page(ctx, form, errors, status=422)
    ctx.flash(ctx.gettext("Team %(name)s created.", name=name.strip()))
    return ctx.redirect("/admin/teams")


# -- roles ------------------------------------------------------------------------------------


@router.get("/roles")
def roles_page(ctx: Page) -> Response:
    service.require_admin(ctx.recs)
    return ctx.render(
        "admin/roles.html",
        {
            **_common(ctx, "roles"),
            "matrix": service.role_matrix(),
            "resources": RESOURCES,
            "resource_label": lambda key: label(ctx, RESOURCE_NAMES, key),
            "action_label": lambda key: label(ctx, ACTIONS, key),
            "scope_label": lambda key: label(ctx, SCOPES, key),
        },
    )


# -- audit trail ------------------------------------------------------------------------------


def _day(value: str | None, *, end: bool) -> str | None:
    """A date from the form as the instant the filter needs; "to" includes the whole day."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return value  # left to the schema, which reports it as a field error
    if end:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).isoformat()


@router.get("/audit")
def audit_page(
    ctx: Page,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=32)] = None,
    resource: Annotated[str | None, Query(max_length=32)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    at_from: Annotated[str | None, Query(max_length=32)] = None,
    at_to: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Cursor = None,
) -> Response:
    service.require_admin(ctx.recs)
    filters = {
        "actor": actor,
        "action": action,
        "resource": resource,
        "outcome": outcome,
        "at_from": at_from,
        "at_to": at_to,
    }
    query = {**filters, "at_from": _day(at_from, end=False), "at_to": _day(at_to, end=True), "cursor": cursor}
    errors: dict[str, str] = {}
    try:
        page = service.audit_events(ctx.recs, query)
    except InvalidInput as exc:
        errors = field_errors(ctx, exc.errors, AUDIT_FIELDS)
        page = {"items": [], "next_cursor": None}
    return ctx.render(
        "admin/audit.html",
        {
            **_common(ctx, "audit"),
            "items": page["items"],
            "next_cursor": page["next_cursor"],
            "filters": {k: v or "" for k, v in filters.items()},
            "errors": errors,
            "chain": chain_cache(ctx.request).last,
            "resources": [
                (r, label(ctx, RESOURCE_NAMES, r)) for r in (*RESOURCES, "session", "auth", "administration")
            ],
            "outcomes": [(k, ctx.gettext(v)) for k, v in OUTCOMES.items()],
            "outcome_label": lambda key: label(ctx, OUTCOMES, key),
        },
        status=422 if errors else 200,
    )


@router.post("/audit/verify")
def verify_chain(ctx: Page) -> Response:
    status = service.verify_chain(ctx.recs, chain_cache(ctx.request))
    if ctx.request.headers.get("hx-request") == "true":
        return ctx.render("admin/_chain.html", {"chain": status})
    return ctx.redirect("/admin/audit")
