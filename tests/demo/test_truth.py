"""The demo's planted truth is recoverable from the generated rows (rapport.demo.truth)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from rapport.analytics.clv import fit_bgnbd, summarise
from rapport.demo import truth
from rapport.demo.chunks import (
    ANCHOR,
    COLUMNS,
    HISTORY_DAYS,
    Context,
    ProductRef,
    TeamRef,
    generate_chunk,
    init_worker,
)
from rapport.demo.vocab import CATEGORIES

CUSTOMERS = 16_000
PURCHASES = ("completed", "paid")


@dataclass
class Generated:
    rows: dict[str, list[list[Any]]]
    truth: dict[int, truth.CustomerTruth]
    products: dict[int, int]  # product id -> category index


def _col(table: str, name: str) -> int:
    return COLUMNS[table].index(name)


@pytest.fixture(scope="module")
def generated() -> Generated:
    return generate()


def generate() -> Generated:
    teams = {
        key: TeamRef(key, n, {"sales": 10 * n, "lead": 10 * n + 1, "crm": 10 * n + 2, "service": 10 * n + 3})
        for n, key in enumerate(("east", "north"), start=1)
    }
    for team in teams.values():
        team.orgs = [(team.id * 100 + i, f"org{i}.example.com") for i in range(20)]
    products = [
        ProductRef(pid, f"p{pid}", 2_000 + 1_000 * (pid % 40), 1_000, pid % len(CATEGORIES))
        for pid in range(1, 241)
    ]
    init_worker(
        Context(seed=5, max_orders=200, sqlite=False, customer_base=1, teams=teams, products=products)
    )
    rows: dict[str, list[list[Any]]] = defaultdict(list)
    planted: dict[int, truth.CustomerTruth] = {}
    for number, first in enumerate(range(0, CUSTOMERS, 4000)):
        chunk = generate_chunk(number, first, 4000)
        shift = len(rows["sales_order"])  # chunk-local order ids start at 1
        for order in chunk.rows["sales_order"]:
            order[0] += shift
        for line in chunk.rows["order_line"]:
            line[0] += shift
        for table, part in chunk.rows.items():
            rows[table].extend(part)
        planted.update((t.customer_id, t) for t in chunk.truth)
    return Generated(dict(rows), planted, {p.id: p.category for p in products})


def _purchases(g: Generated) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    o = COLUMNS["sales_order"]
    cid, status, at, total = (
        o.index("customer_id"),
        o.index("status"),
        o.index("ordered_at"),
        o.index("total_amount"),
    )
    bought = [r for r in g.rows["sales_order"] if r[status] in PURCHASES]
    return (
        np.array([r[cid] for r in bought]),
        np.array([r[at].date() for r in bought], dtype="datetime64[D]"),
        np.array([float(r[total]) for r in bought]),
    )


def test_the_truth_is_consistent() -> None:
    assert sum(s.share for s in truth.SEGMENTS) == pytest.approx(1.0)
    grouped = sorted(c for cats in truth.AFFINITY_GROUPS.values() for c in cats)
    assert grouped == list(range(len(CATEGORIES)))
    assert sum(truth.GROUP_WEIGHTS) == pytest.approx(1.0)
    assert set(truth.SEASONALITY) == set(range(1, 13))


def test_every_customer_has_a_planted_truth(generated: Generated) -> None:
    assert len(generated.truth) == CUSTOMERS
    shares = Counter(t.segment for t in generated.truth.values())
    for i, seg in enumerate(truth.SEGMENTS):
        assert shares[i] / CUSTOMERS == pytest.approx(seg.share, abs=0.015)
    buyers = {r[_col("sales_order", "customer_id")] for r in generated.rows["sales_order"]}
    assert all(generated.truth[c].segment != truth.SEGMENT_INDEX["browsers"] for c in buyers)


@pytest.mark.parametrize(
    ("segment", "each_parameter"), [("casual", True), ("regular", False), ("loyal", False)]
)
def test_bgnbd_recovers_the_planted_parameters(
    generated: Generated, segment: str, each_parameter: bool
) -> None:
    """Customers of one segment without a complaint whose whole history lies in the window.

    The mean purchase rate r/alpha and the mean dropout a/(a+b) are pinned down at every sample
    size here; a and b one by one only for the largest segment (about 5,000 customers; the
    smaller segments' a and b trade off against each other within wide confidence bands).
    """
    window_start = ANCHOR - dt.timedelta(days=HISTORY_DAYS)
    c = COLUMNS["customer"]
    signup = {r[c.index("id")]: r[c.index("created_at")] for r in generated.rows["customer"]}
    seg_i = truth.SEGMENT_INDEX[segment]
    chosen = {
        cid
        for cid, t in generated.truth.items()
        if t.segment == seg_i and t.complaint == truth.NO_COMPLAINT and signup[cid] >= window_start
    }
    ids, dates, amounts = _purchases(generated)
    keep = np.isin(ids, list(chosen))
    summary = summarise(ids[keep], dates[keep], amounts[keep], end=ANCHOR.date(), time_unit="day")
    assert len(summary) > 700
    fitted = fit_bgnbd(summary)
    planted = truth.SEGMENTS[seg_i]
    assert fitted.r / fitted.alpha == pytest.approx(planted.r / planted.alpha, rel=0.1)
    assert fitted.r == pytest.approx(planted.r, rel=0.2)
    mean_drop = fitted.a / (fitted.a + fitted.b)
    assert mean_drop == pytest.approx(planted.a / (planted.a + planted.b), rel=0.25)
    if each_parameter:
        for name in ("r", "alpha", "a", "b"):
            assert getattr(fitted, name) == pytest.approx(getattr(planted, name), rel=0.2), name


def test_categories_of_one_group_are_bought_together(generated: Generated) -> None:
    line_order, line_product = _col("order_line", "order_id"), _col("order_line", "product_id")
    baskets: dict[int, set[int]] = defaultdict(set)
    for line in generated.rows["order_line"]:
        baskets[line[line_order]].add(generated.products[line[line_product]])
    n = len(baskets)
    single = Counter(c for cats in baskets.values() for c in cats)
    pairs = Counter(p for cats in baskets.values() for p in itertools.combinations(sorted(cats), 2))

    def lift(a: int, b: int) -> float:
        return pairs[(min(a, b), max(a, b))] * n / (single[a] * single[b])

    group_of = {c: g for g, cats in truth.AFFINITY_GROUPS.items() for c in cats}
    within = [
        lift(a, b) for a, b in itertools.combinations(range(len(CATEGORIES)), 2) if group_of[a] == group_of[b]
    ]
    across = [
        lift(a, b) for a, b in itertools.combinations(range(len(CATEGORIES)), 2) if group_of[a] != group_of[b]
    ]
    assert min(within) > 1.2, within
    assert max(across) < 1.0, across


def test_unresolved_complaints_drive_churn(generated: Generated) -> None:
    """Observable churn: no purchase in the last 180 days, among regular and loyal customers whose
    first purchase is over a year old (for casual buyers half a year without an order is normal)."""
    ids, dates, _ = _purchases(generated)
    first: dict[int, np.datetime64] = {}
    last: dict[int, np.datetime64] = {}
    for cid, day in zip(ids.tolist(), dates, strict=True):
        first[cid] = min(first.get(cid, day), day)
        last[cid] = max(last.get(cid, day), day)
    anchor = np.datetime64(ANCHOR.date())
    rates: dict[int, float] = {}
    frequent = {truth.SEGMENT_INDEX["regular"], truth.SEGMENT_INDEX["loyal"]}
    for state in (truth.NO_COMPLAINT, truth.RESOLVED, truth.UNRESOLVED):
        pop = [
            c
            for c in first
            if generated.truth[c].complaint == state
            and generated.truth[c].segment in frequent
            and anchor - first[c] > np.timedelta64(365, "D")
        ]
        churned = [c for c in pop if anchor - last[c] > np.timedelta64(180, "D")]
        rates[state] = len(churned) / len(pop)
    assert rates[truth.UNRESOLVED] > rates[truth.RESOLVED] + 0.1, rates
    assert rates[truth.UNRESOLVED] > 1.4 * rates[truth.NO_COMPLAINT], rates
    # The driver is visible in the data: an open, overdue, high-priority complaint task.
    t = COLUMNS["task"]
    open_complaints = {
        r[t.index("customer_id")]
        for r in generated.rows["task"]
        if r[t.index("title")] == truth.COMPLAINT_TASK[0] and r[t.index("status")] == "open"
    }
    unresolved = {c for c, tr in generated.truth.items() if tr.complaint == truth.UNRESOLVED}
    assert open_complaints == unresolved


def test_revenue_is_seasonal(generated: Generated) -> None:
    _, dates, amounts = _purchases(generated)
    months = dates.astype("datetime64[M]").astype(int) % 12 + 1
    mean = {m: float(amounts[months == m].mean()) for m in (7, 11)}
    assert mean[11] / mean[7] > 1.3, mean
