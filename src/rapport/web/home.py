"""Start page. The role dashboards build on this page (see /work notes: web pages helper)."""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.responses import Response

from rapport.access.policy import Action
from rapport.access.specs import CUSTOMER
from rapport.web.context import Page
from rapport.web.nav import N_, NavItem, register_nav
from rapport.web.routing import page_router

router = page_router()
register_nav(NavItem("home", N_("Home"), "/", order=0))

STAGE_LABELS = {
    "lead": N_("Lead"),
    "prospect": N_("Prospect"),
    "customer": N_("Customer"),
    "loyal": N_("Loyal"),
    "at_risk": N_("At risk"),
    "churned": N_("Churned"),
}


@router.get("/")
def home(ctx: Page) -> Response:
    chart = None
    grant = ctx.user.grant(CUSTOMER.name)
    if grant.allows(Action.read) and "lifecycle_stage" not in grant.hidden:
        t = CUSTOMER.table
        rows = ctx.recs.conn.execute(
            select(t.c.lifecycle_stage, func.count())
            .where(ctx.recs.visible(CUSTOMER))
            .group_by(t.c.lifecycle_stage)
            .order_by(t.c.lifecycle_stage)
        ).all()
        chart = {
            "tooltip": {},
            "xAxis": {
                "type": "category",
                "data": [ctx.gettext(STAGE_LABELS.get(s, s)) for s, _ in rows],
            },
            "yAxis": {"type": "value"},
            "series": [{"type": "bar", "data": [n for _, n in rows]}],
        }
    return ctx.render("home.html", {"nav": "home", "stage_chart": chart})
