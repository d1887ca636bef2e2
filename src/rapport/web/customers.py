"""Customers: the list (instant search, filters, sort, keyset pages, saved views, bulk actions)
and the customer 360 page (inline editing with If-Match semantics, timeline, quick actions).

Everything goes through the same services and data-access layer as /api/v1/customers: scope,
hidden fields, masks and audit are the API's.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy import delete, select
from starlette.datastructures import FormData
from starlette.responses import Response

from rapport.access.policy import Action
from rapport.access.records import Records, Row
from rapport.access.specs import CONTACT_POINT, CUSTOMER, ORDER
from rapport.activities.schemas import InteractionCreate, TaskCreate
from rapport.activities.service import interactions, tasks
from rapport.analytics.service import customer_scores
from rapport.crud import RecordId
from rapport.customers.schemas import CustomerFilters, CustomerUpdate
from rapport.customers.search import looks_like_phone
from rapport.customers.service import customers
from rapport.errors import Forbidden, InvalidInput, NotFound, PreconditionFailed, RapportError
from rapport.models import SavedView
from rapport.models.base import utcnow
from rapport.web.context import Page, PageContext, is_htmx
from rapport.web.forms import field_errors, form_values
from rapport.web.i18n import local_deadline
from rapport.web.lookups import team_options, user_names, user_options
from rapport.web.nav import N_, NavItem, register_nav
from rapport.web.routing import page_router

router = page_router()
register_nav(NavItem("customers", N_("Customers"), "/customers", resource="customer", order=10))

PAGE_SIZE = 50
BULK_LIMIT = 200
FILTERS = ("q", "lifecycle_stage", "region", "tag", "owner_id", "team_id", "sort")
# Saved views keep filters and sort, never search text (it can name a person).
VIEW_FILTERS = tuple(f for f in FILTERS if f != "q")

STAGES = {
    "lead": N_("Lead"),
    "prospect": N_("Prospect"),
    "customer": N_("Customer"),
    "loyal": N_("Loyal"),
    "at_risk": N_("At risk"),
    "churned": N_("Churned"),
}
SORTS = {
    "-id": N_("Newest first"),
    "id": N_("Oldest first"),
    "display_name": N_("Name A–Z"),
    "-display_name": N_("Name Z–A"),
    "-updated_at": N_("Recently updated"),
}
GENDERS = {"female": N_("Female"), "male": N_("Male"), "other": N_("Other"), "unknown": N_("Unknown")}
LANGS = {"zh-CN": "中文（简体）", "zh-TW": "中文（繁體）", "en": "English", "ja": "日本語", "ko": "한국어"}
CHANNELS = {
    "email": N_("Email"),
    "phone": N_("Phone"),
    "sms": N_("SMS"),
    "wechat": N_("WeChat"),
    "mail": N_("Mail"),
    "in_person": N_("In person"),
    "none": N_("None"),
}
KINDS = {
    "note": N_("Note"),
    "call": N_("Call"),
    "email": N_("Email"),
    "chat": N_("Chat"),
    "visit": N_("Visit"),
    "social": N_("Social"),
    "order": N_("Order"),
    "task": N_("Task"),
}
CONTACT_KINDS = {
    "phone": N_("Phone"),
    "email": N_("Email"),
    "wechat": N_("WeChat"),
    "address": N_("Address"),
    "national_id": N_("ID number"),
}
TASK_STATUS = {"open": N_("open"), "done": N_("done"), "cancelled": N_("cancelled")}
ORDER_STATUS = {
    "pending": N_("pending"),
    "paid": N_("paid"),
    "shipped": N_("shipped"),
    "completed": N_("completed"),
    "cancelled": N_("cancelled"),
    "refunded": N_("refunded"),
}
PRIORITIES = {"low": N_("Low"), "normal": N_("Normal"), "high": N_("High"), "urgent": N_("Urgent")}
DIRECTIONS = {"inbound": N_("Inbound"), "outbound": N_("Outbound")}
# Profile fields editable inline, in display order: (field, label, input kind).
PROFILE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("display_name", N_("Name"), "text"),
    ("family_name", N_("Family name"), "text"),
    ("given_name", N_("Given name"), "text"),
    ("name_latin", N_("Name in Latin script"), "text"),
    ("lifecycle_stage", N_("Stage"), "stage"),
    ("gender", N_("Gender"), "gender"),
    ("birth_date", N_("Birth date"), "date"),
    ("occupation", N_("Occupation"), "text"),
    ("region", N_("Region"), "text"),
    ("city", N_("City"), "text"),
    ("preferred_language", N_("Preferred language"), "language"),
    ("preferred_channel", N_("Preferred channel"), "channel"),
    ("tags", N_("Tags"), "tags"),
)
LABELS = {
    "stages": STAGES,
    "sorts": SORTS,
    "genders": GENDERS,
    "langs": LANGS,
    "channels": CHANNELS,
    "kinds": KINDS,
    "contact_kinds": CONTACT_KINDS,
    "priorities": PRIORITIES,
    "directions": DIRECTIONS,
    "task_status": TASK_STATUS,
    "order_status": ORDER_STATUS,
}


# -- list -------------------------------------------------------------------------------------


def _filters_from(request: Request) -> dict[str, str]:
    return {k: v for k in FILTERS if (v := request.query_params.get(k, "").strip())}


def _sorts_for(ctx: PageContext) -> dict[str, str]:
    hidden = ctx.user.grant(CUSTOMER.name).hidden
    return {k: v for k, v in SORTS.items() if k.lstrip("-") not in hidden}


def primary_contacts(recs: Records, ids: list[int]) -> dict[int, dict[str, str]]:
    """The first phone and email of each customer, masked as the caller's role requires."""
    if not ids or not recs.principal.can(CONTACT_POINT.name, Action.read):
        return {}
    if "value" in recs.principal.grant(CONTACT_POINT.name).hidden:
        return {}
    t = CONTACT_POINT.table
    stmt = (
        recs.select(CONTACT_POINT)
        .where(t.c.customer_id.in_(ids), t.c.kind.in_(("phone", "email")))
        .order_by(t.c.customer_id, t.c.is_primary.desc(), t.c.id)
    )
    out: dict[int, dict[str, str]] = {}
    for row in recs.fetch(CONTACT_POINT, stmt):
        out.setdefault(row["customer_id"], {}).setdefault(row["kind"], row.get("value") or "")
    return out


def _views(ctx: PageContext) -> list[SavedView]:
    assert ctx.db is not None
    return list(
        ctx.db.execute(
            select(SavedView)
            .where(SavedView.user_id == ctx.user.user_id, SavedView.page == "customers")
            .order_by(SavedView.name, SavedView.id)
        ).scalars()
    )


def _list_context(ctx: PageContext, filters: dict[str, str], cursor: str | None) -> dict[str, Any]:
    recs = ctx.recs
    errors: dict[str, str] = {}
    notice = None
    rows: list[Row] = []
    next_cursor = prev_cursor = None
    try:
        f = CustomerFilters.model_validate({**filters, "cursor": cursor, "limit": PAGE_SIZE})
    except ValidationError as exc:
        errors = field_errors(ctx, exc)
        f = None
    if f is not None:
        try:
            page = recs.page(
                CUSTOMER,
                sort=f.sort or customers.default_sort_for(recs),
                cursor=f.cursor,
                limit=f.limit,
                where=customers.where(recs, f),
            )
            rows = customers.expand(recs, page.items)
            next_cursor, prev_cursor = page.next_cursor, page.prev_cursor
        except Forbidden:
            q = filters.get("q", "")
            notice = (
                ctx.gettext("Your role may not search by phone or email.")
                if "@" in q or looks_like_phone(q)
                else ctx.gettext("Your role may not search or sort by this field.")
            )
        except InvalidInput as exc:
            errors = field_errors(ctx, exc)
            if "q" in errors and looks_like_phone(filters.get("q", "")):
                errors["q"] = ctx.gettext("This is not a valid phone number.")
    ids = [r["id"] for r in rows]
    query = urlencode(filters)
    return {
        "nav": "customers",
        "rows": _list_rows(
            ctx, rows, primary_contacts(recs, ids), user_names(recs, (r.get("owner_id") for r in rows))
        ),
        "filters": filters,
        "query": query,
        "view_query": urlencode({k: v for k, v in filters.items() if k in VIEW_FILTERS}),
        "next_url": f"/customers?{urlencode({**filters, 'cursor': next_cursor})}" if next_cursor else None,
        "prev_url": f"/customers?{urlencode({**filters, 'cursor': prev_cursor})}" if prev_cursor else None,
        "first_url": f"/customers?{query}" if cursor else None,
        "errors": errors,
        "notice": notice,
        "sorts": _sorts_for(ctx),
        "hidden": ctx.user.grant(CUSTOMER.name).hidden,
        "can_update": ctx.user.can(CUSTOMER.name, Action.update),
        "can_assign": ctx.user.can(CUSTOMER.name, Action.assign),
        "labels": LABELS,
    }


def _list_rows(
    ctx: PageContext, rows: list[Row], contacts: dict[int, dict[str, str]], owners: dict[int, str]
) -> list[dict[str, Any]]:
    """What each table row shows, prepared once in Python (cheaper than logic in the template)."""
    stage_names = {k: ctx.gettext(v) for k, v in STAGES.items()}
    out = []
    for r in rows:
        cid, stage, owner = r["id"], r.get("lifecycle_stage"), r.get("owner_id")
        cps = contacts.get(cid, {})
        region = " · ".join(x for x in (r.get("region"), r.get("city")) if x)
        out.append(
            {
                "id": cid,
                "name": r.get("display_name") or f"#{cid}",
                "latin": r.get("name_latin") or "",
                "stage": stage or "",
                "stage_label": stage_names.get(stage, stage) if stage else "",
                "region": region,
                "phone": cps.get("phone", ""),
                "email": cps.get("email", ""),
                "tags": r.get("tags") or [],
                "owner": (owners.get(owner) or f"#{owner}") if owner else "",
                "updated": ctx.fmt.date(r.get("updated_at")),
            }
        )
    return out


@router.get("/customers")
def customer_list(ctx: Page, request: Request, cursor: str | None = None) -> Response:
    filters = _filters_from(request)
    context = _list_context(ctx, filters, cursor)
    if is_htmx(request) and request.headers.get("hx-target") == "results":
        return ctx.render("customers/_results.html", context)
    return ctx.render(
        "customers/list.html",
        {
            **context,
            "views": _views(ctx),
            "users": user_options(ctx.recs),
            "teams": team_options(ctx.recs),
        },
    )


@router.post("/customers/views")
async def save_view(ctx: Page, request: Request) -> Response:
    form = await request.form()
    name = str(form.get("name") or "").strip()[:100]
    query = {k: v for k in VIEW_FILTERS if isinstance(v := form.get(k), str) and v.strip()}
    back = "/customers?" + urlencode(query)
    if not name:
        ctx.flash(ctx.gettext("Give the view a name."), "error")
        return ctx.redirect(back)
    assert ctx.db is not None and ctx.user.user_id is not None
    now = utcnow()
    ctx.db.add(
        SavedView(
            user_id=ctx.user.user_id,
            page="customers",
            name=name,
            query=urlencode(query),
            created_at=now,
            updated_at=now,
        )
    )
    ctx.db.flush()
    ctx.flash(ctx.gettext("View “%(name)s” saved.", name=name))
    return ctx.redirect(back)


@router.post("/customers/views/{record_id}/delete")
def delete_view(ctx: Page, record_id: RecordId) -> Response:
    assert ctx.db is not None
    done = ctx.db.execute(
        delete(SavedView).where(SavedView.id == record_id, SavedView.user_id == ctx.user.user_id)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        raise NotFound(f"view {record_id} not found")
    ctx.flash(ctx.gettext("View deleted."), "info")
    return ctx.redirect("/customers")


def _split_tags(text: str) -> list[str]:
    return [t for t in (p.strip() for p in re.split(r"[,，、;；]", text)) if t]


@router.post("/customers/bulk")
async def bulk_action(ctx: Page, request: Request) -> Response:
    """Tag or assign the ticked customers, each through the same service call as the API."""
    form = await request.form()
    # The filters form rides along (hx-include), so the list comes back as the user sees it.
    filters = {k: v.strip() for k in FILTERS if isinstance(v := form.get(k), str) and v.strip()}
    ids = _ids(form)
    action = str(form.get("action") or "")
    done, failed = 0, 0
    message = None
    if not ids:
        message = ("error", ctx.gettext("Tick at least one customer."))
    elif action == "tag":
        new = _split_tags(str(form.get("bulk_tag") or ""))
        if not new:
            message = ("error", ctx.gettext("Enter a tag."))
        else:
            for cid in ids:
                try:
                    row = customers.get(ctx.recs, cid)
                    merged = list(dict.fromkeys([*(row.get("tags") or []), *new]))
                    customers.do_update(ctx.recs, cid, CustomerUpdate(tags=merged), row["version"])
                    done += 1
                except (RapportError, ValidationError):
                    failed += 1
    elif action == "assign":
        owner = _int(form.get("owner_id"))
        team = _int(form.get("team_id"))
        if owner is None and team is None:
            message = ("error", ctx.gettext("Choose an owner or a team."))
        else:
            for cid in ids:
                try:
                    version = customers.locate(ctx.recs, cid, Action.assign)["version"]
                    customers.reassign(ctx.recs, cid, owner, team, version)
                    done += 1
                except RapportError:
                    failed += 1
    else:
        message = ("error", ctx.gettext("Choose an action."))
    if message is None:
        text = ctx.ngettext("%(num)s customer changed.", "%(num)s customers changed.", done)
        if failed:
            text += " " + ctx.ngettext(
                "%(num)s could not be changed (not allowed or changed meanwhile).",
                "%(num)s could not be changed (not allowed or changed meanwhile).",
                failed,
            )
        message = ("success" if not failed else "warning", text)
    context = _list_context(ctx, filters, None)
    return ctx.render("customers/_results.html", {**context, "message": message})


def _ids(form: FormData) -> list[int]:
    out = []
    for value in form.getlist("ids")[:BULK_LIMIT]:
        if isinstance(value, str) and value.isdigit():
            out.append(int(value))
    return list(dict.fromkeys(out))


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


# -- customer 360 -------------------------------------------------------------------------------


def _editable(ctx: PageContext) -> list[tuple[str, str, str]]:
    hidden = ctx.user.grant(CUSTOMER.name).hidden
    return [f for f in PROFILE_FIELDS if f[0] not in hidden]


def _profile_context(ctx: PageContext, customer: Row) -> dict[str, Any]:
    return {
        "c": customer,
        "fields": _editable(ctx),
        "labels": LABELS,
        "can_update": ctx.user.can(CUSTOMER.name, Action.update),
        "owners": user_names(ctx.recs, [customer.get("owner_id")]),
    }


def _timeline_context(ctx: PageContext, customer_id: int) -> dict[str, Any]:
    view = customers.view_360(ctx.recs, customer_id, 50)
    authors = user_names(
        ctx.recs,
        [e["detail"].get("author_id") for e in view["timeline"]]
        + [e["detail"].get("assignee_id") for e in view["timeline"]],
    )
    return {"view": view, "authors": authors}


def _activity_context(
    ctx: PageContext,
    customer_id: int,
    open_form: str = "note",
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        **_timeline_context(ctx, customer_id),
        "open_form": open_form,
        "errors": errors or {},
        "values": values or {},
        "labels": LABELS,
        "can_interact": ctx.user.can("interaction", Action.create),
        "can_task": ctx.user.can("task", Action.create),
        "assignees": user_options(ctx.recs),
    }


@router.get("/customers/{record_id}")
def customer_360(ctx: Page, record_id: RecordId) -> Response:
    recs = ctx.recs
    activity = _activity_context(ctx, record_id)
    customer = activity["view"]["customer"]
    orders: list[Row] = []
    if ctx.user.can(ORDER.name, Action.read):
        o = ORDER.table
        orders = recs.fetch(
            ORDER,
            recs.select(ORDER).where(o.c.customer_id == record_id).order_by(o.c.ordered_at.desc()).limit(10),
        )
    scores: list[dict[str, Any]] = []
    if ctx.user.can("analytics", Action.read):
        try:
            scores = customer_scores(recs, record_id)
        except Forbidden:
            scores = []
    return ctx.render(
        "customers/detail.html",
        {
            "nav": "customers",
            **_profile_context(ctx, customer),
            **activity,
            "orders": orders,
            "scores": scores,
        },
    )


@router.get("/customers/{record_id}/profile")
def profile_card(ctx: Page, record_id: RecordId) -> Response:
    customer = customers.get(ctx.recs, record_id)
    return ctx.render("customers/_profile.html", _profile_context(ctx, customer))


@router.get("/customers/{record_id}/edit")
def profile_form(ctx: Page, record_id: RecordId) -> Response:
    customer = customers.locate(ctx.recs, record_id, Action.update)
    customer = customers.expand(ctx.recs, [customer])[0]
    values = {name: _display_value(customer.get(name)) for name, _, _ in _editable(ctx)}
    return ctx.render(
        "customers/_profile_form.html",
        {**_profile_context(ctx, customer), "values": values, "version": customer["version"], "errors": {}},
    )


def _display_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@router.post("/customers/{record_id}")
async def profile_save(ctx: Page, request: Request, record_id: RecordId) -> Response:
    """Save the inline edit; a stale version answers 409 with the user's input kept."""
    form = await request.form()
    fields = _editable(ctx)
    values = {name: str(form.get(name) or "").strip() for name, _, _ in fields if name in form}
    version = _int(form.get("version"))
    changes: dict[str, Any] = {k: (v if v != "" else None) for k, v in values.items()}
    if "tags" in changes:
        changes["tags"] = _split_tags(values["tags"])
    errors: dict[str, str] = {}
    conflict = None
    try:
        if version is None:
            raise InvalidInput("version missing")
        body = CustomerUpdate.model_validate(changes)
        customer = customers.do_update(ctx.recs, record_id, body, version)
    except ValidationError as exc:
        errors = field_errors(ctx, exc)
    except PreconditionFailed:
        # Someone saved in between: keep what this user typed, show what is saved now.
        current = customers.get(ctx.recs, record_id)
        conflict = {name: _display_value(current.get(name)) for name, _, _ in fields}
        version = current["version"]
    except InvalidInput as exc:
        errors = field_errors(ctx, exc)
    else:
        ctx.flash(ctx.gettext("Saved."))
        response = ctx.render("customers/_profile.html", {**_profile_context(ctx, customer), "saved": True})
        return response
    customer = customers.get(ctx.recs, record_id)
    return ctx.render(
        "customers/_profile_form.html",
        {
            **_profile_context(ctx, customer),
            "values": values,
            "version": version,
            "errors": errors,
            "conflict": conflict,
        },
        status=409 if conflict else 422,
    )


@router.post("/customers/{record_id}/interactions")
async def add_interaction(ctx: Page, request: Request, record_id: RecordId) -> Response:
    """Add a note or log a call without leaving the 360 page (returns the activity panel)."""
    form = await request.form()
    values = form_values(form)
    kind = "call" if values.get("kind") == "call" else "note"
    values["kind"] = kind
    if kind == "call":
        values.setdefault("channel", "phone")
        values.setdefault("direction", "outbound")
    else:
        values["direction"] = "internal"
    try:
        body = InteractionCreate.model_validate(values)
        if kind == "note" and not body.body:
            raise InvalidInput(errors=[{"field": "body", "type": "missing", "message": "required"}])
        interactions.do_create(ctx.recs, body, record_id)
    except (ValidationError, InvalidInput) as exc:
        errors = {f"{kind}_{k}": v for k, v in field_errors(ctx, exc).items()}
        return ctx.render(
            "customers/_activity.html",
            _activity_context(ctx, record_id, kind, errors, {f"{kind}_{k}": v for k, v in values.items()}),
            status=422,
        )
    saved = ctx.gettext("Note added.") if kind == "note" else ctx.gettext("Call logged.")
    return ctx.render("customers/_activity.html", {**_activity_context(ctx, record_id, kind), "saved": saved})


@router.post("/customers/{record_id}/tasks")
async def add_task(ctx: Page, request: Request, record_id: RecordId) -> Response:
    form = await request.form()
    values = form_values(form)
    due = values.get("due_at")
    if isinstance(due, str) and due:
        # Left as typed when it is no date: the schema then reports it next to the field.
        with contextlib.suppress(ValueError):
            values["due_at"] = local_deadline(due)
    try:
        body = TaskCreate.model_validate(values)
        tasks.do_create(ctx.recs, body, record_id)
    except (ValidationError, InvalidInput) as exc:
        errors = {f"task_{k}": v for k, v in field_errors(ctx, exc).items()}
        shown = {f"task_{k}": v for k, v in form_values(form).items()}
        return ctx.render(
            "customers/_activity.html", _activity_context(ctx, record_id, "task", errors, shown), status=422
        )
    return ctx.render(
        "customers/_activity.html",
        {**_activity_context(ctx, record_id, "task"), "saved": ctx.gettext("Task created.")},
    )
