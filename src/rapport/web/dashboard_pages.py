"""The home dashboard per role: key figures with charts, my tasks due and recent activity.

The data come from :mod:`rapport.dashboard.service` (scope rules of the data-access layer, key
figures cached per scope for a minute). Charts are drawn by ``static/dashboard.js`` from the
values in ``data-*`` attributes: no inline script (CSP), labels translated here.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.responses import Response

from rapport.access.policy import Action
from rapport.dashboard import service
from rapport.dashboard.schemas import Count, Figures
from rapport.models.base import utcnow
from rapport.web import i18n
from rapport.web.context import Page, PageContext
from rapport.web.nav import N_, NavItem, register_nav
from rapport.web.routing import page_router

router = page_router()
register_nav(NavItem("home", N_("Home"), "/", order=0))

# Lifecycle stages as staff set them and as the analytics jobs write them.
STAGES: dict[str, str] = {
    "lead": N_("Lead"),
    "prospect": N_("Prospect"),
    "customer": N_("Customer"),
    "loyal": N_("Loyal"),
    "at_risk": N_("At risk"),
    "churned": N_("Churned"),
    "potential": N_("Potential"),
    "new": N_("New"),
    "active": N_("Active"),
    "declining": N_("Declining"),
    "won_back": N_("Won back"),
}
ROLES: dict[str, str] = {
    "admin": N_("Administrator"),
    "team_lead": N_("Team lead"),
    "crm_specialist": N_("CRM specialist"),
    "sales_rep": N_("Sales representative"),
    "service_rep": N_("Service representative"),
    "data_analyst": N_("Data analyst"),
}
SCOPES: dict[str, str] = {
    "own": N_("Figures for your own customers"),
    "team": N_("Figures for your team's customers"),
    "all": N_("Figures for all customers"),
}
INTERACTION_KINDS: dict[str, str] = {
    "note": N_("Note"),
    "call": N_("Call"),
    "email": N_("Email"),
    "chat": N_("Chat"),
    "visit": N_("Visit"),
    "social": N_("Social media"),
}
ORDER_STATUSES: dict[str, str] = {
    "pending": N_("Pending"),
    "paid": N_("Paid"),
    "shipped": N_("Shipped"),
    "completed": N_("Completed"),
    "cancelled": N_("Cancelled"),
    "refunded": N_("Refunded"),
}
CHANNELS: dict[str, str] = {
    "online": N_("Online"),
    "in_store": N_("In store"),
    "phone": N_("Phone"),
    "wechat": N_("WeChat"),
    "marketplace": N_("Marketplace"),
    "wholesale": N_("Wholesale"),
    "other": N_("Other"),
}
PRIORITIES: dict[str, str] = {
    "low": N_("Low"),
    "normal": N_("Normal"),
    "high": N_("High"),
    "urgent": N_("Urgent"),
}


def figure_cache(request: Request) -> service.FigureCache:
    cache: service.FigureCache | None = getattr(request.app.state, "dashboard_figures", None)
    if cache is None:
        cache = request.app.state.dashboard_figures = service.FigureCache()
    return cache


def label(ctx: PageContext, table: dict[str, str], key: str | None) -> str:
    if key is None:
        return ctx.gettext("Not set")
    return ctx.gettext(table[key]) if key in table else key


def _counts(ctx: PageContext, counts: tuple[Count, ...], table: dict[str, str] | None) -> dict[str, str]:
    labels = [
        ctx.gettext("Other")
        if c.other
        else (label(ctx, table, c.key) if table else c.key or ctx.gettext("Not set"))
        for c in counts
    ]
    return {"labels": json.dumps(labels, ensure_ascii=False), "data": json.dumps([c.count for c in counts])}


def charts(ctx: PageContext, fig: Figures) -> dict[str, Any]:
    """Chart inputs as JSON strings for data-* attributes (autoescaped by the template)."""
    out: dict[str, Any] = {}
    if fig.by_stage:
        out["stages"] = _counts(ctx, fig.by_stage, STAGES)
    if fig.by_region:
        out["regions"] = _counts(ctx, fig.by_region, None)
    if fig.revenue:
        main = fig.revenue[0]
        out["revenue"] = {
            "labels": json.dumps([m.month for m in main.months]),
            "data": json.dumps([float(m.amount) for m in main.months]),
            "orders": json.dumps([m.orders for m in main.months]),
            "currency": main.currency,
            "total": ctx.fmt.money(main.total, main.currency),
            "others": [(s.currency, ctx.fmt.money(s.total, s.currency)) for s in fig.revenue[1:]],
        }
    return out


def _figures_context(ctx: PageContext, fig: Figures | None, role: str) -> dict[str, Any]:
    this_month = None
    if fig is not None and fig.revenue:
        last = fig.revenue[0].months[-1]
        this_month = ctx.fmt.money(last.amount, fig.revenue[0].currency)
    return {
        "fig": fig,
        "charts": charts(ctx, fig) if fig is not None else {},
        "this_month": this_month,
        "role": role,
        "scope_label": label(ctx, SCOPES, fig.scope) if fig is not None else "",
    }


@router.get("/")
def home(ctx: Page) -> Response:
    cache = figure_cache(ctx.request)
    # Figures not in the cache load in a second request (see dashboard.html): on millions of rows
    # their first computation takes a while, the tasks and activity never wait for it.
    # "Today" ends at midnight where the workspace shows times (RAPPORT_TIMEZONE).
    data = service.home(ctx.recs, cache=cache, with_figures=False, tz=i18n.DISPLAY_TZ)
    return ctx.render(
        "dashboard.html",
        {
            "nav": "home",
            "home": data,
            "figures_pending": data.figures is None and service.has_figures(ctx.recs),
            **_figures_context(ctx, data.figures, data.role),
            "role_label": label(ctx, ROLES, data.role),
            "scope_label": label(ctx, SCOPES, ctx.user.grant("customer").scope.value),
            "kind_label": lambda key: label(ctx, INTERACTION_KINDS, key),
            "status_label": lambda key: label(ctx, ORDER_STATUSES, key),
            "priority_label": lambda key: label(ctx, PRIORITIES, key),
        },
    )


@router.get("/dashboard/figures")
def figures(ctx: Page) -> Response:
    """The key figures and charts as a fragment (cached per scope for a minute)."""
    fig = (
        service.figures(ctx.recs, cache=figure_cache(ctx.request), tz=i18n.DISPLAY_TZ)
        if service.has_figures(ctx.recs)
        else None
    )
    tasks_overdue = None
    if fig is not None and ctx.user.user_id is not None and ctx.user.can("task", Action.read):
        tasks_overdue = service.my_tasks(ctx.recs, now=utcnow(), tz=i18n.DISPLAY_TZ, limit=1)[1]
    return ctx.render(
        "_dashboard_figures.html",
        {**_figures_context(ctx, fig, ctx.user.role.value), "tasks_overdue": tasks_overdue},
    )
