"""Customer value metrics written once with Ibis, so they run on DuckDB and on Spark alike.

Every function takes Ibis table expressions shaped like the analytics store tables
(:mod:`rapport.analytics.store`) and returns an Ibis expression; the caller executes it on
whichever backend holds the tables. Nothing here depends on a backend.

RFM
---
Per customer with at least one purchase (orders whose status is paid, shipped or completed)
before ``as_of``:

* ``recency_days``: days from the last purchase's date to ``as_of``'s date (0 = bought that day);
* ``frequency``: number of purchases;
* ``monetary``: sum of their ``total_amount``, rounded to cents.

Each is scored 1..``bins`` (default 5, quintiles) by rank: ``score = floor(rank * bins / n) + 1``
where ``rank`` is the 0-based minimum rank among the ``n`` purchasers, ordered so that a higher
score is better (recency: more days ranks first). Ties share a score, so the scores do not depend
on row order and every engine gives the same answer.

Segments use ``r`` and ``fm = (f + m + 1) // 2`` (the rounded mean of F and M), both first
rescaled to 1..5 when ``bins`` is not 5 (``ceil(score * 5 / bins)``). The first rule that
matches names the segment:

=====================  =======================  ============================================
segment                rule                     meaning
=====================  =======================  ============================================
champions              r >= 4 and fm >= 4       bought recently, buy often and spend most
cannot lose them       r == 1 and fm >= 4       were among the best, have not come back
at risk                r <= 2 and fm >= 3       spent well, slipping away
loyal                  r == 3 and fm >= 4       buy often and much, not lately
new customers          r == 5 and f == 1        first purchase very recently
potential loyalists    r >= 4 and fm >= 2       recent, average frequency and spend
promising              r >= 4                   recent, little bought so far
need attention         r == 3 and fm == 3       middle on every axis
about to sleep         r == 3                   middling recency, low value
hibernating            r == 2                   long ago, low value
lost                   otherwise (r == 1)       longest ago, lowest value
=====================  =======================  ============================================
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import ibis
import ibis.expr.types as ir

from rapport.analytics.store import PURCHASE_STATUSES

RFM_SEGMENTS: tuple[str, ...] = (
    "champions",
    "loyal",
    "potential loyalists",
    "new customers",
    "promising",
    "need attention",
    "about to sleep",
    "at risk",
    "cannot lose them",
    "hibernating",
    "lost",
)

AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("under 18", 0, 17),
    ("18-24", 18, 24),
    ("25-34", 25, 34),
    ("35-44", 35, 44),
    ("45-54", 45, 54),
    ("55-64", 55, 64),
    ("65+", 65, 200),
)
FREQUENCY_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4-5", 4, 5),
    ("6-9", 6, 9),
    ("10+", 10, 1 << 62),
)
RECENCY_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("0-30 days", 0, 30),
    ("31-90 days", 31, 90),
    ("91-180 days", 91, 180),
    ("181-365 days", 181, 365),
    ("366-730 days", 366, 730),
    ("over 730 days", 731, 1 << 62),
)
# Upper bounds (exclusive) of the spend buckets, in the order currency.
MONETARY_EDGES: tuple[float, ...] = (100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0)

UNKNOWN = "unknown"


def _day(as_of: dt.datetime | dt.date) -> dt.date:
    return as_of.date() if isinstance(as_of, dt.datetime) else as_of


def _end(as_of: dt.datetime | dt.date) -> dt.datetime:
    """Exclusive end of observation: the start of the day after ``as_of``'s date."""
    day = _day(as_of)
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def purchases(orders: ir.Table, as_of: dt.datetime | dt.date) -> ir.Table:
    """Orders that count as purchases, up to and including ``as_of``'s date."""
    return orders.filter(orders.status.isin(PURCHASE_STATUSES), orders.ordered_at < _end(as_of))


def customer_summary(orders: ir.Table, as_of: dt.datetime | dt.date, *, dates: bool = True) -> ir.Table:
    """One row per purchaser: recency in days, frequency, monetary (and first/last purchase)."""
    p = purchases(orders, as_of)
    extra = {"first_purchase": p.ordered_at.min()} if dates else {}
    per = p.group_by("customer_id").aggregate(
        last_purchase=p.ordered_at.max(),
        frequency=p.count(),
        monetary=p.total_amount.sum().round(2),
        **extra,
    )
    as_of_days = (_day(as_of) - dt.date(1970, 1, 1)).days
    out = per.mutate(recency_days=(ibis.literal(as_of_days) - per.last_purchase.date().epoch_days()))
    return out if dates else out.drop("last_purchase")


def _score(rank: ir.IntegerValue, n: ir.IntegerValue, bins: int) -> ir.IntegerValue:
    return ((rank * bins) // n + 1).cast("int64")


def _to5(score: ir.IntegerValue, bins: int) -> ir.IntegerValue:
    if bins == 5:
        return score
    return (score * 5 / bins).ceil().cast("int64")


def segment_expr(r: ir.IntegerValue, f: ir.IntegerValue, fm: ir.IntegerValue) -> ir.StringValue:
    """The segment rules of the module docstring, on 1..5 scores."""
    return ibis.cases(
        ((r >= 4) & (fm >= 4), "champions"),
        ((r == 1) & (fm >= 4), "cannot lose them"),
        ((r <= 2) & (fm >= 3), "at risk"),
        ((r == 3) & (fm >= 4), "loyal"),
        ((r == 5) & (f == 1), "new customers"),
        ((r >= 4) & (fm >= 2), "potential loyalists"),
        (r >= 4, "promising"),
        ((r == 3) & (fm == 3), "need attention"),
        (r == 3, "about to sleep"),
        (r == 2, "hibernating"),
        else_="lost",
    )


def segment_of(r: int, f: int, m: int, bins: int = 5) -> str:
    """The same rules in plain Python (for documentation, tests and single customers)."""
    import math

    def to5(s: int) -> int:
        return s if bins == 5 else math.ceil(s * 5 / bins)

    r5, f5, m5 = to5(r), to5(f), to5(m)
    fm = (f5 + m5 + 1) // 2
    rules: tuple[tuple[bool, str], ...] = (
        (r5 >= 4 and fm >= 4, "champions"),
        (r5 == 1 and fm >= 4, "cannot lose them"),
        (r5 <= 2 and fm >= 3, "at risk"),
        (r5 == 3 and fm >= 4, "loyal"),
        (r5 == 5 and f5 == 1, "new customers"),
        (r5 >= 4 and fm >= 2, "potential loyalists"),
        (r5 >= 4, "promising"),
        (r5 == 3 and fm == 3, "need attention"),
        (r5 == 3, "about to sleep"),
        (r5 == 2, "hibernating"),
    )
    return next((name for cond, name in rules if cond), "lost")


def rfm(orders: ir.Table, as_of: dt.datetime | dt.date, bins: int = 5) -> ir.Table:
    """Per purchaser: recency_days, frequency, monetary, scores r, f, m (1..bins), fm and segment."""
    if not 2 <= bins <= 10:
        raise ValueError("RFM bins must be between 2 and 10")
    s = customer_summary(orders, as_of, dates=False)
    n = s.count().over(ibis.window())
    scored = s.mutate(
        r=_score(ibis.rank().over(order_by=ibis.desc(s.recency_days)), n, bins),
        f=_score(ibis.rank().over(order_by=s.frequency), n, bins),
        m=_score(ibis.rank().over(order_by=s.monetary), n, bins),
    )
    r5, f5, m5 = _to5(scored.r, bins), _to5(scored.f, bins), _to5(scored.m, bins)
    fm = ((f5 + m5 + 1) // 2).cast("int64")
    out = scored.mutate(fm=fm, segment=segment_expr(r5, f5, fm))
    return out.select(
        "customer_id",
        "recency_days",
        "frequency",
        "monetary",
        "r",
        "f",
        "m",
        "fm",
        "segment",
    ).order_by("customer_id")


def rfm_segments(scored: ir.Table) -> ir.Table:
    """Segment summary: customers, share, average recency/frequency/monetary, revenue."""
    total = scored.count().as_scalar()
    out = scored.group_by("segment").aggregate(
        customers=scored.count(),
        avg_recency_days=scored.recency_days.mean().round(2),
        avg_frequency=scored.frequency.mean().round(4),
        avg_monetary=scored.monetary.mean().round(2),
        revenue=scored.monetary.sum().round(2),
    )
    return out.mutate(share=(out.customers / total).round(6)).order_by(ibis.desc("customers"), "segment")


def rfm_grid(scored: ir.Table) -> ir.Table:
    """Customers per (r, f) cell, with their average monetary."""
    return (
        scored.group_by(["r", "f"])
        .aggregate(customers=scored.count(), avg_monetary=scored.monetary.mean().round(2))
        .order_by(["r", "f"])
    )


def _bucket(value: ir.NumericValue, buckets: tuple[tuple[str, int, int], ...]) -> ir.StringValue:
    return ibis.cases(*(((value >= lo) & (value <= hi), name) for name, lo, hi in buckets), else_=UNKNOWN)


def age_band(birth_year: ir.IntegerValue, as_of: dt.datetime | dt.date) -> ir.StringValue:
    """Age in whole years at ``as_of``'s year (the store keeps the birth year only)."""
    age = _day(as_of).year - birth_year
    return ibis.cases(*(((age >= lo) & (age <= hi), name) for name, lo, hi in AGE_BANDS), else_=UNKNOWN)


BREAKDOWNS: tuple[str, ...] = ("gender", "age_band", "region", "channel", "stage")
_BREAKDOWN_COLUMNS = {
    "gender": "gender",
    "region": "region",
    "channel": "preferred_channel",
    "stage": "lifecycle_stage",
}


def breakdown(customers: ir.Table, by: str, as_of: dt.datetime | dt.date) -> ir.Table:
    """Customers by ``by`` (gender, age_band, region, channel, stage): key, customers, share."""
    if by == "age_band":
        key = age_band(customers.birth_year, as_of)
    elif by in _BREAKDOWN_COLUMNS:
        key = customers[_BREAKDOWN_COLUMNS[by]].cast("string").fill_null(UNKNOWN)
    else:
        raise ValueError(f"unknown breakdown {by!r}; choose from {', '.join(BREAKDOWNS)}")
    c = customers.filter(customers.created_at < _end(as_of)).mutate(key=key)
    total = c.count().as_scalar()
    out = c.group_by("key").aggregate(customers=c.count())
    return out.mutate(share=(out.customers / total).round(6)).order_by(ibis.desc("customers"), "key")


def _distribution(s: ir.Table, key: ir.StringValue, order: tuple[str, ...]) -> ir.Table:
    total = s.count().as_scalar()
    rank = ibis.cases(*((key == name, i) for i, name in enumerate(order)), else_=len(order))
    b = s.mutate(bucket=key, ord=rank)
    grouped = b.group_by(["bucket", "ord"]).aggregate(customers=b.count())
    return (
        grouped.mutate(share=(grouped.customers / total).round(6))
        .order_by("ord")
        .select("bucket", "customers", "share")
    )


def monetary_buckets() -> tuple[tuple[str, float, float], ...]:
    edges = (0.0, *MONETARY_EDGES)
    out = [(f"{int(lo)}-{int(hi)}", lo, hi) for lo, hi in itertools.pairwise(edges)]
    out.append((f"{int(edges[-1])}+", edges[-1], float("inf")))
    return tuple(out)


def distribution(orders: ir.Table, of: str, as_of: dt.datetime | dt.date) -> ir.Table:
    """Purchasers by purchase ``frequency``, ``monetary`` (spend) or ``recency`` bucket."""
    s = customer_summary(orders, as_of)
    if of == "frequency":
        return _distribution(
            s, _bucket(s.frequency, FREQUENCY_BUCKETS), tuple(b[0] for b in FREQUENCY_BUCKETS)
        )
    if of == "recency":
        return _distribution(
            s, _bucket(s.recency_days, RECENCY_BUCKETS), tuple(b[0] for b in RECENCY_BUCKETS)
        )
    if of == "monetary":
        buckets = monetary_buckets()
        key = ibis.cases(
            *(((s.monetary >= lo) & (s.monetary < hi), name) for name, lo, hi in buckets[:-1]),
            else_=buckets[-1][0],
        )
        return _distribution(s, key, tuple(b[0] for b in buckets))
    raise ValueError(f"unknown distribution {of!r}; choose frequency, monetary or recency")


def repeat_purchase(orders: ir.Table, as_of: dt.datetime | dt.date) -> ir.Table:
    """One row: purchasers, repeat purchasers (2+ purchases) and their rate."""
    s = customer_summary(orders, as_of)
    out = s.aggregate(
        purchasers=s.count(), repeat_purchasers=(s.frequency >= 2).cast("int64").sum().fill_null(0)
    )
    return out.mutate(
        repeat_rate=ibis.cases(
            (out.purchasers > 0, (out.repeat_purchasers / out.purchasers).round(6)), else_=0.0
        )
    )


def cohorts(orders: ir.Table, as_of: dt.datetime | dt.date) -> ir.Table:
    """Retention by first-purchase month.

    One row per (cohort month, months since first purchase) in which at least one of the cohort's
    customers purchased: the cohort's size, how many of its customers purchased in that month, and
    that as a share of the cohort. Months without any purchase have no row (retention 0).
    """
    p = purchases(orders, as_of)
    p = p.mutate(month_index=p.ordered_at.year() * 12 + p.ordered_at.month() - 1)
    first = p.group_by("customer_id").aggregate(cohort_index=p.month_index.min())
    joined = p.join(first, "customer_id")
    active = joined.group_by(
        [joined.cohort_index, (joined.month_index - joined.cohort_index).name("period")]
    ).aggregate(customers=joined.customer_id.nunique())
    sizes = first.group_by("cohort_index").aggregate(cohort_size=first.count())
    out = active.join(sizes, "cohort_index")
    return (
        out.mutate(
            cohort=(out.cohort_index // 12).cast("int64").cast("string")
            + "-"
            + ibis.cases(((out.cohort_index % 12) < 9, "0"), else_="")
            + ((out.cohort_index % 12) + 1).cast("int64").cast("string"),
            retention=(out.customers / out.cohort_size).round(6),
        )
        .select("cohort", "period", "cohort_size", "customers", "retention")
        .order_by(["cohort", "period"])
    )


def revenue_series(orders: ir.Table, as_of: dt.datetime | dt.date, unit: str = "month") -> ir.Table:
    """Revenue, purchases and purchasing customers per calendar month or ISO week (Monday start)."""
    if unit not in ("month", "week"):
        raise ValueError("unit must be month or week")
    p = purchases(orders, as_of)
    period = p.ordered_at.truncate("M" if unit == "month" else "W").date()
    q = p.mutate(period=period)
    return (
        q.group_by("period")
        .aggregate(
            revenue=q.total_amount.sum().round(2),
            orders=q.count(),
            customers=q.customer_id.nunique(),
        )
        .order_by("period")
    )


def params_bins(params: dict[str, Any]) -> int:
    bins = int(params.get("bins", 5))
    if not 2 <= bins <= 10:
        raise ValueError("RFM bins must be between 2 and 10")
    return bins
