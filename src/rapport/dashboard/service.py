"""The home dashboard: my tasks due, my customers' recent activity and key figures, per role.

Everything is read through the data-access layer's scope rules (:meth:`Records.visible`) and
grants: a sales rep's figures cover their own and their team's customers, a service rep's every
customer, and a figure over a field the role may not read (say a hidden lifecycle stage) is left
out rather than computed. Lists of personal records shown (interactions, orders, customer names)
are audited like an API list.

Key figures are aggregates over up to millions of rows, so they are cached per scope for
:data:`FIGURES_TTL` seconds (:class:`FigureCache`); tasks and activity are always live, so a task
marked done leaves the list at once.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import time
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Any

from rapport.access.policy import Action, Grant, Scope
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER, INTERACTION, ORDER, TASK
from rapport.analytics.store import PURCHASE_STATUSES
from rapport.dashboard import repository as repo
from rapport.dashboard.schemas import (
    Activity,
    Count,
    Figures,
    Home,
    MonthRevenue,
    RevenueSeries,
    TaskDue,
)
from rapport.models.base import table_of, utcnow
from rapport.models.dashboard import DashboardCustomerCount, DashboardOrderDay, DashboardTaskDay

FIGURES_TTL = 60.0
MONTHS = 12
REGIONS_SHOWN = 8
TASKS_SHOWN = 20
ACTIVITY_SHOWN = 12


class FigureCache:
    """Key figures per scope for ``ttl`` seconds. One per application (``app.state``), so tests
    and separate databases never share entries."""

    def __init__(self, ttl: float = FIGURES_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, Figures]] = {}
        self._computing: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Figures | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or self.clock() - hit[0] >= self.ttl:
                return None
            return hit[1]

    def put(self, key: Hashable, figures: Figures) -> None:
        with self._lock:
            if len(self._entries) > 10_000:  # one entry per scope; a bound, not a policy
                self._entries.clear()
            self._entries[key] = (self.clock(), figures)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Figures]) -> Figures:
        """One computation per key at a time: requests of the same scope arriving together wait
        for the first one's result instead of each scanning millions of rows."""
        hit = self.get(key)
        if hit is not None:
            return hit
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            hit = self.get(key)
            if hit is None:
                hit = compute()
                self.put(key, hit)
        with self._lock:
            self._computing.pop(key, None)
        return hit


def scope_key(recs: Records) -> Hashable:
    """Who sees the same figures: the role (hidden fields), and the user/team ids its scope uses."""
    p = recs.principal
    scope = p.grant(CUSTOMER.name).scope
    if scope is Scope.all:
        ids: tuple[int | None, ...] = ()
    elif scope is Scope.team and p.team_id is not None:
        ids = (p.user_id, p.team_id)
    else:
        ids = (p.user_id,)
    return (p.role.value, scope.value, ids, p.scopes)


def month_bounds(now: dt.datetime, months: int = MONTHS, tz: dt.tzinfo = dt.UTC) -> list[dt.datetime]:
    """The n+1 month starts (in ``tz``, the business time zone) delimiting the last ``months``
    months, the current one included."""
    local = now.astimezone(tz)
    index = local.year * 12 + (local.month - 1) - (months - 1)
    return [dt.datetime((index + i) // 12, (index + i) % 12 + 1, 1, tzinfo=tz) for i in range(months + 1)]


def fold(counts: list[tuple[str | None, int]], shown: int) -> tuple[Count, ...]:
    """The ``shown`` largest groups, and the rest summed into one ``other`` entry."""
    head = [Count(k, n) for k, n in counts[:shown]]
    rest = sum(n for _, n in counts[shown:])
    if rest:
        head.append(Count(None, rest, other=True))
    return tuple(head)


def _ranked(totals: dict[str | None, int]) -> list[tuple[str | None, int]]:
    # Largest first; ties and empty values then order the same on every database.
    rows = [(k, n) for k, n in totals.items() if n]
    rows.sort(key=lambda r: (-r[1], r[0] is None, r[0] or ""))
    return rows


def figures(
    recs: Records,
    *,
    now: dt.datetime | None = None,
    cache: FigureCache | None = None,
    tz: dt.tzinfo = dt.UTC,
) -> Figures:
    if cache is None:
        return compute_figures(recs, now=now or utcnow(), tz=tz)
    key = (scope_key(recs), str(tz))
    return cache.get_or_compute(key, lambda: compute_figures(recs, now=now or utcnow(), tz=tz))


def compute_figures(recs: Records, *, now: dt.datetime, tz: dt.tzinfo = dt.UTC) -> Figures:
    """Key figures from the rollup tables (kept by triggers in every write's transaction), so
    they cost the same on 5,000 and 1,000,000 customers; ``tz`` decides where months begin."""
    p, conn = recs.principal, recs.conn
    cust_grant = p.grant(CUSTOMER.name)
    out: dict[str, Any] = {"scope": cust_grant.scope.value, "computed_at": now}
    if cust_grant.allows(Action.read):
        r = table_of(DashboardCustomerCount)
        rows = repo.rollup_customers(conn, r, [recs.visible_rollup(r, cust_grant)])
        out["customers"] = sum(n for *_, n in rows)
        if p.user_id is not None and "owner_id" not in cust_grant.hidden:
            out["my_customers"] = sum(n for owner, _, _, n in rows if owner == p.user_id)
        if "lifecycle_stage" not in cust_grant.hidden:
            stages: dict[str | None, int] = {}
            for _, stage, _, n in rows:
                stages[stage] = stages.get(stage, 0) + n
            out["by_stage"] = tuple(Count(k, n) for k, n in _ranked(stages))
        if "region" not in cust_grant.hidden:
            regions: dict[str | None, int] = {}
            for _, _, region, n in rows:
                regions[region or None] = regions.get(region or None, 0) + n
            out["by_region"] = fold(_ranked(regions), REGIONS_SHOWN)
    order_grant = p.grant(ORDER.name)
    if order_grant.allows(Action.read) and not {"total_amount", "ordered_at"} & order_grant.hidden:
        out["revenue"] = _revenue(recs, order_grant, now, tz)
    task_grant = p.grant(TASK.name)
    if task_grant.allows(Action.read):
        t, r = TASK.table, table_of(DashboardTaskDay)
        today = _utc_day_start(now)
        before_today = repo.tasks_due_before(
            conn, r, day=today.date().isoformat(), where=[recs.visible_rollup(r, task_grant)]
        )
        # Today's tasks are overdue only up to now: counted from the task table (one day of rows).
        due_today = repo.count(
            conn,
            t,
            [t.c.status == "open", t.c.due_at >= today, t.c.due_at < now, recs.visible(TASK, task_grant)],
        )
        out["overdue_in_scope"] = before_today + due_today
    return Figures(**out)


_DAY = dt.timedelta(days=1)


def _utc_day_start(now: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)


def _revenue(recs: Records, grant: Grant, now: dt.datetime, tz: dt.tzinfo) -> tuple[RevenueSeries, ...]:
    """Purchases per business month. The rollup holds UTC days; a day that a month boundary in
    ``tz`` cuts (16:00 UTC for Shanghai) is split by reading its smaller side from the orders."""
    conn, o, r = recs.conn, ORDER.table, table_of(DashboardOrderDay)
    local = month_bounds(now, tz=tz)
    labels = [f"{b.year:04d}-{b.month:02d}" for b in local[:-1]]
    bounds = [b.astimezone(dt.UTC) for b in local]

    def month_of(at: dt.datetime) -> int | None:
        i = bisect.bisect_right(bounds, at) - 1
        return i if 0 <= i < len(labels) else None

    days = repo.order_days(
        conn,
        r,
        first=bounds[0].date().isoformat(),
        last=(bounds[-1] - dt.timedelta(microseconds=1)).date().isoformat(),
        where=[recs.visible_rollup(r, grant)],
    )
    cut = {b.date().isoformat(): b for b in bounds if b.timetz() != dt.time(tzinfo=dt.UTC)}
    sums: dict[str, list[list[int]]] = {}

    def add(currency: str, month: int | None, cents: int, n: int) -> None:
        if month is not None:
            cell = sums.setdefault(currency, [[0, 0] for _ in labels])[month]
            cell[0] += cents
            cell[1] += n

    for (day, currency), (cents, n) in days.items():
        if day not in cut:
            add(currency, month_of(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)), cents, n)
    for day, boundary in cut.items():
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        early = boundary - start <= _DAY / 2
        lo, hi = (start, boundary) if early else (boundary, start + _DAY)
        side = repo.cents_by(
            conn,
            o,
            at="ordered_at",
            amount="total_amount",
            group="currency",
            start=lo,
            end=hi,
            where=[o.c.status.in_(PURCHASE_STATUSES), recs.visible(ORDER, grant)],
        )
        before, after = month_of(boundary - dt.timedelta(microseconds=1)), month_of(boundary)
        for currency in {c for d, c in days if d == day} | set(side):
            total, total_n = days.get((day, currency), (0, 0))
            part, part_n = side.get(currency, (0, 0))
            rest, rest_n = total - part, total_n - part_n
            add(currency, before, *((part, part_n) if early else (rest, rest_n)))
            add(currency, after, *((rest, rest_n) if early else (part, part_n)))
    cent = Decimal("0.01")
    series = [
        RevenueSeries(
            currency,
            tuple(
                MonthRevenue(lab, (Decimal(c) * cent).quantize(cent), n)
                for lab, (c, n) in zip(labels, cells, strict=True)
            ),
        )
        for currency, cells in sums.items()
        if any(n for _, n in cells)
    ]
    series.sort(key=lambda s: (-s.total, s.currency))
    return tuple(series)


def _end_of_today(now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    local = now.astimezone(tz)
    tomorrow = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return tomorrow.astimezone(dt.UTC)


def customer_names(recs: Records, ids: list[int]) -> dict[int, str]:
    """Display names of the customers named on the dashboard, when the role may read names."""
    grant = recs.principal.grant(CUSTOMER.name)
    if not ids or not grant.allows(Action.read) or "display_name" in grant.hidden:
        return {}
    found = repo.names(recs.conn, CUSTOMER.table, "display_name", ids, [recs.visible(CUSTOMER, grant)])
    if found:
        recs.audit("list", CUSTOMER.name, None, details={"ids": sorted(found)})
    return found


def my_tasks(
    recs: Records, *, now: dt.datetime, tz: dt.tzinfo = dt.UTC, limit: int = TASKS_SHOWN
) -> tuple[list[dict[str, Any]], int, int]:
    """My open tasks due by the end of today (overdue first), how many are overdue, how many due today."""
    p = recs.principal
    t = TASK.table
    grant = p.grant(TASK.name)
    end = _end_of_today(now, tz)
    mine = [
        t.c.assignee_id == p.user_id,
        t.c.status == "open",
        t.c.due_at < end,
        recs.visible(TASK, grant),
    ]
    columns = [
        c for c in ("id", "version", "customer_id", "title", "priority", "due_at") if c not in grant.hidden
    ]
    rows = repo.oldest(recs.conn, t, columns, at="due_at", where=mine, limit=limit)
    # A rep can hold 100,000 overdue tasks at 1,000,000 customers (0.45 s to count with a scope
    # probe each): days before today come from the rollup, today's part from the task index.
    r, today = table_of(DashboardTaskDay), _utc_day_start(now)
    overdue = repo.tasks_due_before(
        recs.conn,
        r,
        day=today.date().isoformat(),
        where=[r.c.assignee_id == p.user_id, recs.visible_rollup(r, grant)],
    ) + repo.count(recs.conn, t, [*mine, t.c.due_at >= today, t.c.due_at < now])
    due_today = repo.count(recs.conn, t, [*mine, t.c.due_at >= now])
    return rows, overdue, due_today


def recent_activity(recs: Records, *, now: dt.datetime, limit: int = ACTIVITY_SHOWN) -> list[dict[str, Any]]:
    """Newest interactions and orders of customers in the caller's scope, merged newest first."""
    p = recs.principal
    merged: list[dict[str, Any]] = []
    ig = p.grant(INTERACTION.name)
    if ig.allows(Action.read):
        i = INTERACTION.table
        cols = [
            c
            for c in ("id", "customer_id", "occurred_at", "kind", "direction", "subject")
            if c not in ig.hidden
        ]
        rows = repo.newest(
            recs.conn,
            i,
            cols,
            at="occurred_at",
            where=[i.c.occurred_at <= now, recs.visible(INTERACTION, ig)],
            limit=limit,
        )
        if rows:
            recs.audit("list", INTERACTION.name, None, details={"ids": [r["id"] for r in rows]})
        merged += [{**r, "source": "interaction", "at": r["occurred_at"]} for r in rows]
    og = p.grant(ORDER.name)
    if og.allows(Action.read):
        o = ORDER.table
        cols = [
            c
            for c in ("id", "customer_id", "ordered_at", "order_number", "status", "total_amount", "currency")
            if c not in og.hidden
        ]
        rows = repo.newest(
            recs.conn,
            o,
            cols,
            at="ordered_at",
            where=[o.c.ordered_at <= now, recs.visible(ORDER, og)],
            limit=limit,
        )
        if rows:
            recs.audit("list", ORDER.name, None, details={"ids": [r["id"] for r in rows]})
        merged += [{**r, "source": "order", "at": r["ordered_at"]} for r in rows]
    merged.sort(key=lambda r: (r["at"], r["source"] == "order", r["id"]), reverse=True)
    return merged[:limit]


_ACTIVITY_DETAIL = {
    "interaction": ("kind", "direction", "subject"),
    "order": ("order_number", "status", "total_amount", "currency"),
}


def home(
    recs: Records,
    *,
    now: dt.datetime | None = None,
    tz: dt.tzinfo = dt.UTC,
    cache: FigureCache | None = None,
    with_figures: bool = True,
) -> Home:
    """Everything the home page shows for the caller. ``tz`` decides where "today" ends.

    ``with_figures=False``: key figures only if the cache has them (pages then fetch them
    separately, so a slow first computation never holds up the tasks and activity)."""
    now = now or utcnow()
    p = recs.principal
    tasks_rows: list[dict[str, Any]] | None = None
    overdue = due_today = 0
    if p.can(TASK.name, Action.read) and p.user_id is not None:
        tasks_rows, overdue, due_today = my_tasks(recs, now=now, tz=tz)
    can_see_activity = p.can(INTERACTION.name, Action.read) or p.can(ORDER.name, Action.read)
    activity_rows = recent_activity(recs, now=now) if can_see_activity else None
    ids = [r["customer_id"] for r in (tasks_rows or []) + (activity_rows or [])]
    names = customer_names(recs, ids)
    tasks = None
    if tasks_rows is not None:
        tasks = tuple(
            TaskDue(
                id=r["id"],
                version=r["version"],
                customer_id=r["customer_id"],
                customer_name=names.get(r["customer_id"]),
                title=r.get("title") or "",
                priority=r.get("priority") or "normal",
                due_at=r.get("due_at"),
                overdue=r.get("due_at") is not None and r["due_at"] < now,
            )
            for r in tasks_rows
        )
    activity = None
    if activity_rows is not None:
        activity = tuple(
            Activity(
                kind=r["source"],
                id=r["id"],
                customer_id=r["customer_id"],
                customer_name=names.get(r["customer_id"]),
                at=r["at"],
                detail={k: r[k] for k in _ACTIVITY_DETAIL[r["source"]] if k in r},
            )
            for r in activity_rows
        )
    fig = None
    if has_figures(recs):
        if with_figures:
            fig = figures(recs, now=now, cache=cache, tz=tz)
        elif cache is not None:
            fig = cache.get((scope_key(recs), str(tz)))
    return Home(
        role=p.role.value,
        figures=fig,
        tasks=tasks,
        tasks_overdue=overdue,
        tasks_due_today=due_today,
        activity=activity,
    )


def has_figures(recs: Records) -> bool:
    return any(recs.principal.can(s.name, Action.read) for s in (CUSTOMER, ORDER, TASK))


def chart_data(fig: Figures) -> dict[str, Any]:
    """The figures as JSON-ready values for the charts (amounts as strings, exact)."""
    out: dict[str, Any] = {"scope": fig.scope}
    if fig.by_stage is not None:
        out["stages"] = [{"key": c.key, "count": c.count} for c in fig.by_stage]
    if fig.by_region is not None:
        out["regions"] = [{"key": c.key, "count": c.count, "other": c.other} for c in fig.by_region]
    if fig.revenue is not None:
        out["revenue"] = [
            {
                "currency": s.currency,
                "months": [m.month for m in s.months],
                "amounts": [str(m.amount) for m in s.months],
                "orders": [m.orders for m in s.months],
            }
            for s in fig.revenue
        ]
    return out
