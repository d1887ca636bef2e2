"""Day-to-day lists: tasks (mine, overdue, everything open in my scope; mark done with HTMX),
orders (list, detail with lines and totals) and organisations (list, detail with their people).

Every read goes through the same services as the API (``rapport.activities``, ``rapport.orders``,
``rapport.organisations``), so scope, hidden fields and audit are the API's: a service rep's order
page simply has no cost or margin to show.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Query
from sqlalchemy import select
from starlette.responses import Response

from rapport.access.policy import Action
from rapport.access.specs import CUSTOMER, ORDER, ORGANISATION, PRODUCT, TASK
from rapport.activities.schemas import TaskUpdate
from rapport.activities.service import tasks
from rapport.admin.service import parse
from rapport.dashboard.service import customer_names
from rapport.errors import Forbidden, InvalidInput, PreconditionFailed
from rapport.models.base import utcnow
from rapport.orders.schemas import OrderFilters
from rapport.orders.service import orders
from rapport.organisations.schemas import OrganisationFilters
from rapport.organisations.service import organisations
from rapport.schemas import ListParams
from rapport.web.context import Page, PageContext, safe_next
from rapport.web.dashboard_pages import CHANNELS, ORDER_STATUSES, PRIORITIES, STAGES, label
from rapport.web.form_errors import field_errors
from rapport.web.nav import N_, NavItem, register_nav
from rapport.web.routing import page_router

router = page_router()
register_nav(NavItem("tasks", N_("Tasks"), "/tasks", resource="task", order=30))
register_nav(NavItem("orders", N_("Orders"), "/orders", resource="order", order=40))
register_nav(
    NavItem("organisations", N_("Organisations"), "/organisations", resource="organisation", order=20)
)

PAGE_SIZE = 50
Cursor = Annotated[str | None, Query(max_length=512)]

TASK_VIEWS: dict[str, str] = {
    "mine": N_("My open tasks"),
    "overdue": N_("My overdue tasks"),
    "scope": N_("All open tasks I can see"),
}


def _require(ctx: PageContext, resource: str) -> None:
    if not ctx.user.can(resource, Action.read):
        ctx.recs.audit("list", resource, None, outcome="denied")
        raise Forbidden(f"your role may not read {resource} records")


def _labels(ctx: PageContext) -> dict[str, Any]:
    return {
        "status_label": lambda key: label(ctx, ORDER_STATUSES, key),
        "priority_label": lambda key: label(ctx, PRIORITIES, key),
        "stage_label": lambda key: label(ctx, STAGES, key),
        "channel_label": lambda key: label(ctx, CHANNELS, key),
    }


# -- tasks ------------------------------------------------------------------------------------


def _task_item(row: dict[str, Any], names: dict[int, str], **extra: Any) -> dict[str, Any]:
    now = utcnow()
    due = row.get("due_at")
    return {
        **row,
        "customer_name": names.get(row["customer_id"]),
        "overdue": row.get("status") == "open" and due is not None and due < now,
        "done": row.get("status") == "done",
        **extra,
    }


@router.get("/tasks")
def task_list(
    ctx: Page, view: Annotated[str, Query(max_length=16)] = "mine", cursor: Cursor = None
) -> Response:
    _require(ctx, TASK.name)
    view = view if view in TASK_VIEWS else "mine"
    t = TASK.table
    where = [t.c.status == "open"]
    if view in ("mine", "overdue"):
        where.append(t.c.assignee_id == ctx.user.user_id)
    if view == "overdue":
        where.append(t.c.due_at < utcnow())
    page = ctx.recs.page(TASK, sort="due_at", cursor=cursor, limit=PAGE_SIZE, where=where)
    names = customer_names(ctx.recs, [r["customer_id"] for r in page.items])
    return ctx.render(
        "tasks.html",
        {
            "nav": "tasks",
            "view": view,
            "views": TASK_VIEWS,
            "items": [_task_item(r, names) for r in page.items],
            "next_cursor": page.next_cursor,
            "prev_cursor": page.prev_cursor,
            **_labels(ctx),
        },
    )


@router.post("/tasks/{record_id}/done")
def task_done(
    ctx: Page,
    record_id: int,
    version: Annotated[int, Form(ge=1)],
    next: Annotated[str, Form(max_length=500)] = "/tasks",
) -> Response:
    recs = ctx.recs
    error = None
    try:
        row = tasks.do_update(recs, record_id, parse(TaskUpdate, {"status": "done"}), version)
    except PreconditionFailed:
        row = tasks.get(recs, record_id)
        error = ctx.gettext("Someone else changed this task. Reload the page and try again.")
    names = customer_names(recs, [row["customer_id"]])
    item = _task_item(row, names, error=error)
    if ctx.request.headers.get("hx-request") == "true":
        return ctx.render("_task_item.html", {"task": item, **_labels(ctx)}, status=409 if error else 200)
    if error:
        ctx.flash(error, "error")
    else:
        ctx.flash(ctx.gettext("Task “%(title)s” marked done.", title=row.get("title") or ""))
    return ctx.redirect(safe_next(next))


# -- orders -----------------------------------------------------------------------------------


@router.get("/orders")
def order_list(
    ctx: Page,
    status: Annotated[str | None, Query(max_length=16)] = None,
    customer_id: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Cursor = None,
) -> Response:
    _require(ctx, ORDER.name)
    filters = {"status": status, "customer_id": customer_id}
    errors: dict[str, str] = {}
    try:
        f = parse(OrderFilters, {k: v for k, v in filters.items() if v})
    except InvalidInput as exc:
        errors = field_errors(ctx, exc.errors, ("status", "customer_id"))
        f = OrderFilters()
    page = ctx.recs.page(
        ORDER, sort="-ordered_at", cursor=cursor, limit=PAGE_SIZE, where=list(orders.where(ctx.recs, f))
    )
    names = customer_names(ctx.recs, [r["customer_id"] for r in page.items])
    return ctx.render(
        "orders.html",
        {
            "nav": "orders",
            "items": page.items,
            "names": names,
            "next_cursor": page.next_cursor,
            "prev_cursor": page.prev_cursor,
            "filters": filters,
            "errors": errors,
            "statuses": [(k, ctx.gettext(v)) for k, v in ORDER_STATUSES.items()],
            **_labels(ctx),
        },
        status=422 if errors else 200,
    )


def _product_names(ctx: PageContext, ids: list[int]) -> dict[int, dict[str, Any]]:
    if not ids or not ctx.user.can(PRODUCT.name, Action.read):
        return {}
    p = PRODUCT.table
    rows = ctx.recs.conn.execute(select(p.c.id, p.c.sku, p.c.name).where(p.c.id.in_(sorted(set(ids)))))
    return {int(r.id): {"sku": r.sku, "name": r.name} for r in rows}


@router.get("/orders/{record_id}")
def order_detail(ctx: Page, record_id: int) -> Response:
    order = orders.get(ctx.recs, record_id)
    lines = order.get("lines") or []
    names = customer_names(ctx.recs, [order["customer_id"]])
    return ctx.render(
        "order.html",
        {
            "nav": "orders",
            "order": order,
            "lines": lines,
            "products": _product_names(ctx, [ln["product_id"] for ln in lines if ln.get("product_id")]),
            "customer_name": names.get(order["customer_id"]),
            "show_margin": "margin_amount" in order,
            "show_cost": "cost_amount" in order,
            "show_unit_cost": any("unit_cost" in ln for ln in lines),
            **_labels(ctx),
        },
    )


# -- organisations ----------------------------------------------------------------------------


@router.get("/organisations")
def organisation_list(
    ctx: Page, q: Annotated[str | None, Query(max_length=100)] = None, cursor: Cursor = None
) -> Response:
    _require(ctx, ORGANISATION.name)
    errors: dict[str, str] = {}
    try:
        f = parse(OrganisationFilters, {"q": q} if q else {})
    except InvalidInput as exc:
        errors = field_errors(ctx, exc.errors, ("q",))
        f = OrganisationFilters()
    page = ctx.recs.page(
        ORGANISATION,
        sort="name",
        cursor=cursor,
        limit=PAGE_SIZE,
        where=list(organisations.where(ctx.recs, f)),
    )
    return ctx.render(
        "organisations.html",
        {
            "nav": "organisations",
            "items": page.items,
            "next_cursor": page.next_cursor,
            "prev_cursor": page.prev_cursor,
            "q": q or "",
            "errors": errors,
            **_labels(ctx),
        },
        status=422 if errors else 200,
    )


@router.get("/organisations/{record_id}")
def organisation_detail(ctx: Page, record_id: int, cursor: Cursor = None) -> Response:
    org = organisations.get(ctx.recs, record_id)
    people = None
    if ctx.user.can(CUSTOMER.name, Action.read):
        people = organisations.people(ctx.recs, record_id, ListParams(cursor=cursor, limit=PAGE_SIZE))
    return ctx.render(
        "organisation.html",
        {
            "nav": "organisations",
            "org": org,
            "people": people.items if people else None,
            "next_cursor": people.next_cursor if people else None,
            "prev_cursor": people.prev_cursor if people else None,
            **_labels(ctx),
        },
    )
