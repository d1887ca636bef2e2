"""Home dashboard figures, tasks and activity: exact values, each role's scope respected."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.dashboard import service
from rapport.dashboard.schemas import Count, Figures
from rapport.pagination import CursorCodec
from tests.factories import Factory

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
D = dt.timedelta


@dataclass
class World:
    east: int
    north: int
    rep_e: int
    rep_e2: int
    rep_n: int
    lead_e: int
    admin: int
    analyst: int
    service_rep: int
    c1: int  # east, rep_e, customer, 华东
    c2: int  # east, rep_e2, lead, 华东
    c3: int  # east, rep_e, customer, no region
    c4: int  # north, rep_n, prospect, 华北
    c5: int  # north, rep_n, prospect, 华北
    tasks: dict[str, int]


@pytest.fixture
def world(factory: Factory) -> World:
    f = factory
    east, north = f.team("华东 East"), f.team("华北 North")
    rep_e, rep_e2 = f.user("sales_rep", east), f.user("sales_rep", east)
    rep_n = f.user("sales_rep", north)
    lead_e = f.user("team_lead", east)
    admin = f.user("admin")
    analyst = f.user("data_analyst", east)
    service_rep = f.user("service_rep", east)
    c1 = f.customer(rep_e, east, display_name="王芳", lifecycle_stage="customer", region="华东")
    c2 = f.customer(rep_e2, east, display_name="李雷", lifecycle_stage="lead", region="华东")
    c3 = f.customer(rep_e, east, display_name="张伟", lifecycle_stage="customer", region=None)
    c4 = f.customer(rep_n, north, display_name="赵敏", lifecycle_stage="prospect", region="华北")
    c5 = f.customer(rep_n, north, display_name="周杰", lifecycle_stage="prospect", region="华北")
    # Deleted customers count nowhere, and neither do their orders.
    gone = f.customer(rep_e, east, lifecycle_stage="customer", region="华东", deleted_at=NOW - D(days=3))
    f.order(gone, Decimal("999.00"), ordered_at=NOW - D(days=1))

    f.order(c1, Decimal("100.00"), ordered_at=NOW - D(days=1), status="completed")
    f.order(c1, Decimal("50.00"), ordered_at=dt.datetime(2026, 5, 31, 23, 59, tzinfo=dt.UTC), status="paid")
    f.order(c2, Decimal("25.50"), ordered_at=dt.datetime(2025, 7, 1, 0, 0, tzinfo=dt.UTC), status="shipped")
    f.order(
        c2, Decimal("7.00"), ordered_at=dt.datetime(2025, 6, 30, 23, 59, tzinfo=dt.UTC)
    )  # 13th month back
    f.order(c3, Decimal("30.00"), ordered_at=NOW - D(days=2), status="pending")  # not a purchase
    f.order(c3, Decimal("20.00"), ordered_at=NOW - D(days=2), status="cancelled")
    f.order(c3, Decimal("10.00"), ordered_at=NOW - D(days=5), currency="USD")
    f.order(c4, Decimal("200.00"), ordered_at=NOW - D(hours=1))
    f.order(
        c5, Decimal("1.00"), ordered_at=NOW + D(days=1)
    )  # after now: not in this month's figure? (see test)

    tasks = {
        "overdue": f.task(c1, rep_e, title="回访王芳", due_at=NOW - D(days=2), priority="high"),
        "today": f.task(c3, rep_e, title="寄样品", due_at=NOW + D(hours=3)),
        "tomorrow": f.task(c1, rep_e, title="明天", due_at=NOW + D(hours=13)),
        "done": f.task(c1, rep_e, title="已完成", due_at=NOW - D(days=1), status="done"),
        "colleague": f.task(c2, rep_e2, title="同事的", due_at=NOW - D(days=1)),
        "north": f.task(c4, rep_n, title="北方", due_at=NOW - D(days=1)),
        # Assigned to rep_e, but on a customer that moved to the other team: out of scope.
        "moved": f.task(c5, rep_e, title="移走的", due_at=NOW - D(days=1)),
    }
    f.interaction(
        c1, rep_e, subject="电话回访", kind="call", direction="outbound", occurred_at=NOW - D(hours=2)
    )
    f.interaction(c4, rep_n, subject="北方备注", occurred_at=NOW - D(minutes=30))
    f.interaction(c2, rep_e2, subject="未来", occurred_at=NOW + D(hours=1))
    return World(
        east, north, rep_e, rep_e2, rep_n, lead_e, admin, analyst, service_rep, c1, c2, c3, c4, c5, tasks
    )


def recs_for(db: Session, user_id: int, role: Role, team_id: int | None) -> Records:
    principal = Principal(user_id=user_id, username=f"u{user_id}", role=role, team_id=team_id)
    return Records(db, principal, CursorCodec("test"))


def months(fig: Figures, currency: str) -> dict[str, tuple[str, int]]:
    assert fig.revenue is not None
    series = next(s for s in fig.revenue if s.currency == currency)
    return {m.month: (str(m.amount), m.orders) for m in series.months if m.orders}


def test_month_bounds_cover_twelve_months_with_the_current_one() -> None:
    bounds = service.month_bounds(dt.datetime(2026, 1, 10, tzinfo=dt.UTC))
    assert bounds[0] == dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    assert bounds[-1] == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert len(bounds) == 13


def test_sales_rep_figures_cover_their_team_only(db: Session, world: World) -> None:
    w = world
    fig = service.compute_figures(recs_for(db, w.rep_e, Role.sales_rep, w.east), now=NOW)
    assert fig.scope == "team"
    assert fig.customers == 3
    assert fig.my_customers == 2
    assert fig.by_stage == (Count("customer", 2), Count("lead", 1))
    assert fig.by_region == (Count("华东", 2), Count(None, 1))
    assert fig.revenue is not None and [s.currency for s in fig.revenue] == ["CNY", "USD"]
    assert months(fig, "CNY") == {"2025-07": ("25.50", 1), "2026-05": ("50.00", 1), "2026-06": ("100.00", 1)}
    assert months(fig, "USD") == {"2026-06": ("10.00", 1)}
    assert fig.revenue[0].months[0].month == "2025-07" and fig.revenue[0].months[-1].month == "2026-06"
    # Overdue open tasks on the team's customers: rep_e's and the colleague's (not north's, not done).
    assert fig.overdue_in_scope == 2


def test_other_team_sees_its_own_figures(db: Session, world: World) -> None:
    w = world
    fig = service.compute_figures(recs_for(db, w.rep_n, Role.sales_rep, w.north), now=NOW)
    assert (fig.customers, fig.my_customers) == (2, 2)
    assert fig.by_stage == (Count("prospect", 2),)
    # The order dated tomorrow falls in this month's bucket (the month is the period, not "until now").
    assert months(fig, "CNY") == {"2026-06": ("201.00", 2)}
    assert fig.overdue_in_scope == 2  # north's and the moved one


def test_admin_sees_everything_and_service_rep_every_customer(db: Session, world: World) -> None:
    w = world
    fig = service.compute_figures(recs_for(db, w.admin, Role.admin, None), now=NOW)
    assert fig.scope == "all"
    assert fig.customers == 5
    assert fig.my_customers == 0
    assert fig.by_stage == (Count("customer", 2), Count("prospect", 2), Count("lead", 1))
    assert fig.by_region == (Count("华东", 2), Count("华北", 2), Count(None, 1))
    assert months(fig, "CNY") == {"2025-07": ("25.50", 1), "2026-05": ("50.00", 1), "2026-06": ("301.00", 3)}
    assert fig.overdue_in_scope == 4
    service_fig = service.compute_figures(recs_for(db, w.service_rep, Role.service_rep, w.east), now=NOW)
    assert (service_fig.customers, service_fig.scope) == (5, "all")
    assert months(service_fig, "CNY") == months(fig, "CNY")


def test_regions_beyond_the_shown_ones_fold_into_other(db: Session, factory: Factory) -> None:
    admin = factory.user("admin")
    for i in range(service.REGIONS_SHOWN + 2):
        for _ in range(i + 1):
            factory.customer(region=f"R{i:02d}")
    fig = service.compute_figures(recs_for(db, admin, Role.admin, None), now=NOW)
    assert fig.by_region is not None
    assert [c.key for c in fig.by_region[:3]] == ["R09", "R08", "R07"]
    assert len(fig.by_region) == service.REGIONS_SHOWN + 1
    assert fig.by_region[-1] == Count(None, 1 + 2, other=True)


def test_my_tasks_due_today_and_overdue_in_scope(db: Session, world: World) -> None:
    w = world
    recs = recs_for(db, w.rep_e, Role.sales_rep, w.east)
    home = service.home(recs, now=NOW)
    assert home.tasks is not None
    assert [(t.id, t.title, t.customer_name, t.overdue) for t in home.tasks] == [
        (w.tasks["overdue"], "回访王芳", "王芳", True),
        (w.tasks["today"], "寄样品", "张伟", False),
    ]
    assert (home.tasks_overdue, home.tasks_due_today) == (1, 1)
    # In Shanghai (UTC+8) today ends at 16:00 UTC, so the 01:00-tomorrow task is not due today.
    rows, overdue, today = service.my_tasks(recs, now=NOW, tz=dt.timezone(dt.timedelta(hours=8)))
    assert [r["id"] for r in rows] == [w.tasks["overdue"], w.tasks["today"]]
    # In UTC-12 today ends at 12:00 UTC on the 16th: tomorrow's 01:00 UTC task is due today.
    rows, overdue, today = service.my_tasks(recs, now=NOW, tz=dt.timezone(dt.timedelta(hours=-12)))
    assert [r["id"] for r in rows] == [w.tasks["overdue"], w.tasks["today"], w.tasks["tomorrow"]]
    assert (overdue, today) == (1, 2)


def test_recent_activity_is_scoped_newest_first_and_audited(db: Session, world: World) -> None:
    w = world
    recs = recs_for(db, w.rep_e, Role.sales_rep, w.east)
    home = service.home(recs, now=NOW)
    assert home.activity is not None
    got = [
        (a.kind, a.customer_name, a.detail.get("status") or a.detail["subject"], a.detail.get("total_amount"))
        for a in home.activity
    ]
    # Nothing after "now" (the interaction planned for later), nothing of the other team.
    assert got == [
        ("interaction", "王芳", "电话回访", None),
        ("order", "王芳", "completed", Decimal("100.00")),
        ("order", "张伟", "cancelled", Decimal("20.00")),  # same time as the pending one: newer id first
        ("order", "张伟", "pending", Decimal("30.00")),
        ("order", "张伟", "completed", Decimal("10.00")),
        ("order", "王芳", "paid", Decimal("50.00")),
        ("order", "李雷", "shipped", Decimal("25.50")),
        ("order", "李雷", "completed", Decimal("7.00")),
    ]
    assert home.activity[0].detail == {"kind": "call", "direction": "outbound", "subject": "电话回访"}
    assert home.activity[4].detail["currency"] == "USD"
    events = db.info["audit"]
    listed = {(e.resource, e.action): e.details["ids"] for e in events}
    assert sorted(listed[("customer", "list")]) == sorted({w.c1, w.c2, w.c3})
    assert len(listed[("interaction", "list")]) == 1
    assert len(listed[("order", "list")]) == 7


def test_analyst_sees_figures_but_no_names_or_free_text(db: Session, world: World) -> None:
    w = world
    recs = recs_for(db, w.analyst, Role.data_analyst, w.east)
    home = service.home(recs, now=NOW)
    assert home.figures is not None and home.figures.customers == 5
    assert home.tasks == ()
    assert home.activity is not None
    first = home.activity[0]
    assert (first.kind, first.customer_id, first.customer_name) == ("interaction", w.c4, None)
    assert first.detail == {"kind": "note", "direction": "internal"}  # no subject for analysts
    assert all(e.resource != "customer" for e in db.info.get("audit", []))


def test_service_rep_orders_carry_no_margins(db: Session, world: World) -> None:
    w = world
    recs = recs_for(db, w.service_rep, Role.service_rep, w.east)
    activity = service.recent_activity(recs, now=NOW)
    assert all("margin_amount" not in r and "cost_amount" not in r for r in activity)


def test_figures_are_cached_per_scope_for_the_ttl(db: Session, world: World, factory: Factory) -> None:
    w = world
    clock = [100.0]
    cache = service.FigureCache(ttl=60, clock=lambda: clock[0])
    rep = recs_for(db, w.rep_e, Role.sales_rep, w.east)
    assert service.figures(rep, now=NOW, cache=cache).customers == 3
    factory.customer(w.rep_e, w.east)
    clock[0] += 59
    assert service.figures(rep, now=NOW, cache=cache).customers == 3
    # A colleague on the same team has another scope key (their own customers count too).
    colleague = recs_for(db, w.rep_e2, Role.sales_rep, w.east)
    assert service.figures(colleague, now=NOW, cache=cache).customers == 4
    clock[0] += 1
    assert service.figures(rep, now=NOW, cache=cache).customers == 4


def test_chart_data_is_json_ready(db: Session, world: World) -> None:
    fig = service.compute_figures(recs_for(db, world.rep_n, Role.sales_rep, world.north), now=NOW)
    data = service.chart_data(fig)
    assert data["stages"] == [{"key": "prospect", "count": 2}]
    assert data["regions"] == [{"key": "华北", "count": 2, "other": False}]
    cny = data["revenue"][0]
    assert cny["currency"] == "CNY"
    assert cny["months"][-1] == "2026-06" and cny["amounts"][-1] == "201.00" and cny["orders"][-1] == 2
    assert cny["amounts"][0] == "0.00" and len(cny["months"]) == 12


def test_concurrent_requests_of_one_scope_compute_once() -> None:
    import threading
    import time as _time

    cache = service.FigureCache(ttl=60)
    calls: list[int] = []

    def slow() -> Figures:
        calls.append(1)
        _time.sleep(0.2)
        return Figures(scope="all", computed_at=NOW, customers=7)

    results: list[Figures] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert [r.customers for r in results] == [7, 7, 7, 7]
