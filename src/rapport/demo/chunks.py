"""Customers and their history, generated a chunk at a time (in worker processes for large loads).

Each chunk draws from its own ``random.Random(f"{seed}:{chunk}")``, so the result does not depend on
how many processes generate it. Values come out ready for the driver (SQLite wants text timestamps
and float money, exactly what SQLAlchemy would have written; psycopg takes Python objects), because
converting tens of millions of values through SQLAlchemy's bind processors would dominate the load.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rapport.customers.search import terms_for
from rapport.demo import truth, vocab

ANCHOR = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
HISTORY_DAYS = 730  # two years of orders before the anchor

# Column order of every row a chunk produces. Ids of contact points, lines, interactions and tasks
# are left to the database: nothing points at them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "customer": (
        "id",
        "organisation_id",
        "display_name",
        "family_name",
        "given_name",
        "name_latin",
        "gender",
        "birth_date",
        "occupation",
        "region",
        "city",
        "preferred_language",
        "preferred_channel",
        "acquisition_source",
        "lifecycle_stage",
        "owner_id",
        "team_id",
        "attributes",
        "created_at",
        "updated_at",
        "version",
    ),
    "customer_tag": ("customer_id", "tag"),
    "customer_search_term": ("term", "customer_id"),
    "contact_point": (
        "customer_id",
        "kind",
        "label",
        "value",
        "value_normalized",
        "country",
        "region",
        "city",
        "district",
        "postal_code",
        "is_primary",
        "is_verified",
        "created_at",
        "updated_at",
        "version",
    ),
    "sales_order": (
        "id",
        "order_number",
        "customer_id",
        "status",
        "channel",
        "currency",
        "total_amount",
        "cost_amount",
        "margin_amount",
        "ordered_at",
        "paid_at",
        "completed_at",
        "created_at",
        "updated_at",
        "version",
    ),
    "order_line": (
        "order_id",
        "product_id",
        "quantity",
        "unit_price",
        "unit_cost",
        "discount_amount",
        "line_total",
    ),
    "interaction": (
        "customer_id",
        "kind",
        "direction",
        "channel",
        "author_id",
        "occurred_at",
        "subject",
        "body",
        "created_at",
        "updated_at",
        "version",
    ),
    "consent_event": ("customer_id", "purpose", "granted", "source", "at", "actor_kind"),
    "task": (
        "customer_id",
        "title",
        "description",
        "status",
        "priority",
        "due_at",
        "assignee_id",
        "completed_at",
        "created_at",
        "updated_at",
        "version",
    ),
}
TABLES = tuple(COLUMNS)  # parents first, so inserting in this order keeps foreign keys valid


@dataclass(slots=True)
class ProductRef:
    id: int
    name: str
    price: int  # cents
    cost: int  # cents
    category: int


@dataclass(slots=True)
class TeamRef:
    key: str
    id: int
    users: dict[str, int]  # username prefix (sales, lead, ...) -> user id
    orgs: list[tuple[int, str]] = field(default_factory=list)  # (organisation id, email domain)


@dataclass(slots=True)
class Context:
    """Everything a worker needs; sent once per worker process."""

    seed: int
    max_orders: int
    sqlite: bool
    customer_base: int  # id of the first customer of this load
    teams: dict[str, TeamRef]
    products: list[ProductRef]


@dataclass(slots=True)
class Chunk:
    number: int
    rows: dict[str, list[list[Any]]]
    first_customer: str | None
    truth: list[truth.CustomerTruth] = field(default_factory=list)  # planted, per customer


class Weighted:
    """Weighted choice by bisecting cumulative weights: one random() per draw."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, pairs: Sequence[tuple[Any, float]]) -> None:
        self.items = [p[0] for p in pairs]
        self.cum = list(itertools.accumulate(p[1] for p in pairs))
        self.total = self.cum[-1]

    def pick(self, rng: random.Random) -> Any:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


CITIES = Weighted([(c, c.weight) for c in vocab.CITIES])
_SURNAMES = Weighted([((s, p), w) for s, p, w in vocab.SURNAMES])
_SOURCES = Weighted(vocab.ACQUISITION_SOURCES)
_CHANNELS = Weighted(vocab.CHANNELS)
_ORDER_CHANNELS = Weighted(vocab.ORDER_CHANNELS)
_B2B_CHANNELS = Weighted(vocab.B2B_ORDER_CHANNELS)
_DOMAINS_ZH = Weighted(vocab.EMAIL_DOMAINS_ZH)
_DOMAINS_EN = Weighted(vocab.EMAIL_DOMAINS_EN)
_MALE = vocab.GIVEN_MALE + vocab.GIVEN_NEUTRAL
_FEMALE = vocab.GIVEN_FEMALE + vocab.GIVEN_NEUTRAL
_WECHAT_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
_SEGMENTS = Weighted([(i, s.share) for i, s in enumerate(truth.SEGMENTS)])
_GROUPS = Weighted([(i, w) for i, w in enumerate(truth.GROUP_WEIGHTS)])
_WORK = truth.GROUP_NAMES.index("work")


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@lru_cache(maxsize=100_000)
def _terms_one(name: str) -> frozenset[str]:
    return frozenset(terms_for(name))


def search_terms(*names: str | None) -> set[str]:
    """Exactly what the customer service indexes (terms_for of the four name fields), cached per name."""
    out: set[str] = set()
    for name in names:
        if name:
            out |= _terms_one(name)
    return out


def stage_for(bought: int, last_order: dt.datetime | None, touches: int) -> str:
    """Lifecycle stage from behaviour: recency and frequency of orders that were not cancelled."""
    if last_order is None:
        return "prospect" if touches else "lead"
    idle = (ANCHOR - last_order).days
    if idle > 300:
        return "churned"
    if idle > 120:
        return "at_risk"
    return "loyal" if bought >= 6 else "customer"


_CTX: Context | None = None


def init_worker(ctx: Context) -> None:
    global _CTX
    _CTX = ctx


def generate_chunk(number: int, first: int, count: int) -> Chunk:
    """Customers ``first .. first+count-1`` of the load (0-based), with everything they own."""
    assert _CTX is not None, "init_worker() first"
    return _ChunkBuilder(_CTX, number).build(first, count)


class _ChunkBuilder:
    def __init__(self, ctx: Context, number: int) -> None:
        self.ctx = ctx
        self.number = number
        self.rng = random.Random(f"{ctx.seed}:{number}")
        # Its own stream, so planting consent leaves every other generated value as it was.
        self.consent_rng = random.Random(f"{ctx.seed}:{number}:consent")
        self.rows: dict[str, list[list[Any]]] = {t: [] for t in TABLES}
        self.order_seq = 0  # chunk-local order ids; the loader shifts them to real ids
        self.truth: list[truth.CustomerTruth] = []
        self.window_start = ANCHOR - dt.timedelta(days=HISTORY_DAYS)
        self.by_category: list[list[ProductRef]] = [[] for _ in vocab.CATEGORIES]
        for p in ctx.products:
            self.by_category[p.category].append(p)
        if ctx.sqlite:
            self.ts: Any = _sqlite_ts
            self.money: Any = _float_money
            self.day: Any = dt.date.isoformat
        else:
            self.ts, self.money, self.day = _same, _decimal_money, _same

    def build(self, first: int, count: int) -> Chunk:
        first_name = None
        for i in range(first, first + count):
            name = self.customer(self.ctx.customer_base + i)
            if first_name is None:
                first_name = name
        return Chunk(self.number, self.rows, first_name, self.truth)

    def customer(self, cid: int) -> str:
        rng, rand, ts = self.rng, self.rng.random, self.ts
        english = rand() < 0.10
        r = rand()
        gender = "female" if r < 0.51 else "male" if r < 0.99 else "unknown"
        city = CITIES.pick(rng)
        team = self.ctx.teams[city.team if rand() < 0.92 else ("east", "north")[rng.randrange(2)]]
        age_days = rng.randrange(18 * 365 + 5, 75 * 365)
        birth = ANCHOR.date() - dt.timedelta(days=age_days)
        signup = ANCHOR - dt.timedelta(seconds=rng.uniform(3 * 86400, 1000 * 86400))

        if english:
            given = (vocab.ENGLISH_FEMALE if gender == "female" else vocab.ENGLISH_MALE)[
                rng.randrange(len(vocab.ENGLISH_MALE))
            ]
            family = vocab.ENGLISH_SURNAMES[rng.randrange(len(vocab.ENGLISH_SURNAMES))]
            display, latin = f"{given} {family}", None
            local = f"{given.lower()}.{family.lower()}"
            language = "en" if rand() < 0.9 else "zh-CN"
            occupation = vocab.OCCUPATIONS_EN[rng.randrange(len(vocab.OCCUPATIONS_EN))]
        else:
            family, family_py = _SURNAMES.pick(rng)
            pool = _FEMALE if gender == "female" else _MALE
            chars = [pool[rng.randrange(len(pool))] for _ in range(1 if rand() < 0.25 else 2)]
            given = "".join(c for c, _ in chars)
            given_py = "".join(p for _, p in chars)
            display = family + given
            latin = f"{given_py.capitalize()} {family_py.capitalize()}" if rand() < 0.7 else None
            local = f"{given_py}.{family_py}" if rand() < 0.5 else f"{family_py}{given_py}"
            language = "zh-CN" if rand() < 0.97 else "zh-TW"
            if age_days > 60 * 365 and rand() < 0.6:
                occupation = vocab.RETIRED_ZH
            else:
                occupation = vocab.OCCUPATIONS_ZH[rng.randrange(len(vocab.OCCUPATIONS_ZH))]

        org: tuple[int, str] | None = None
        if team.orgs and rand() < 0.25:
            # Skewed: a few accounts have many people, most have one or two.
            org = team.orgs[int(len(team.orgs) * rand() ** 2)]
        r = rand()
        owner = team.users["sales" if r < 0.75 else "lead" if r < 0.9 else "crm"]

        bought, spent, last_order = self.orders(cid, signup, org is not None, team)
        touches = self.interactions(cid, team, signup)
        at_risk = last_order is not None and (ANCHOR - last_order).days > 120
        touches += self.tasks(cid, team, signup, at_risk)
        stage = stage_for(bought, last_order, touches)
        channel = "email" if english and rand() < 0.5 else _CHANNELS.pick(rng)
        source = "partner" if org and rand() < 0.5 else _SOURCES.pick(rng)
        self.rows["customer"].append(
            [
                cid,
                org[0] if org else None,
                display,
                family,
                given,
                latin,
                gender,
                self.day(birth),
                occupation,
                city.region,
                city.city,
                language,
                channel,
                source,
                stage,
                owner,
                team.id,
                "{}",
                ts(signup),
                ts(signup),
                1,
            ]
        )
        tags = set()
        if spent > 2_000_000 or (stage == "loyal" and bought >= 10):
            tags.add("VIP")
        if (ANCHOR - signup).days < 60:
            tags.add("新客户")
        if org:
            tags.add("企业客户")
        if stage == "at_risk":
            tags.add("流失预警")
        for _ in range(int(rand() * 2.3)):
            tags.add(vocab.INTEREST_TAGS[rng.randrange(len(vocab.INTEREST_TAGS))])
        self.rows["customer_tag"].extend([cid, t] for t in sorted(tags))
        terms = search_terms(display, family, given, latin)
        self.rows["customer_search_term"].extend([t, cid] for t in sorted(terms))
        self.contacts(cid, city, ts(signup), local, english, org)
        chance = self.consent_rng.random
        self.rows["consent_event"].extend(
            [cid, purpose, True, "web_form", ts(signup), "data_subject"]
            for purpose, share in truth.CONSENT_SHARES
            if chance() < share
        )
        return display

    def contacts(
        self,
        cid: int,
        city: vocab.City,
        created: Any,
        local: str,
        english: bool,
        org: tuple[int, str] | None,
    ) -> None:
        rng, rand = self.rng, self.rng.random
        out = self.rows["contact_point"]
        prefixes = vocab.MOBILE_PREFIXES
        phones = 0 if rand() < 0.05 else 2 if rand() < 0.1 else 1
        for n in range(phones):
            e164 = f"+86{prefixes[rng.randrange(len(prefixes))]}{rng.randrange(100_000_000):08d}"
            label = "手机" if n == 0 else "工作"
            out.append(
                [
                    cid,
                    "phone",
                    label,
                    e164,
                    e164,
                    "CN",
                    None,
                    None,
                    None,
                    None,
                    n == 0,
                    rand() < 0.6,
                    created,
                    created,
                    1,
                ]
            )
        if rand() < (0.95 if english else 0.55):
            if rand() < 0.35 and not english:
                email = f"{rng.randrange(10_000_000, 3_000_000_000)}@qq.com"
            else:
                domain = (_DOMAINS_EN if english else _DOMAINS_ZH).pick(rng)
                email = f"{local}{rng.randrange(100) if rand() < 0.6 else ''}@{domain}"
            out.append(
                [
                    cid,
                    "email",
                    "个人",
                    email,
                    email,
                    None,
                    None,
                    None,
                    None,
                    None,
                    True,
                    rand() < 0.4,
                    created,
                    created,
                    1,
                ]
            )
        if org and rand() < 0.7:
            work = f"{local}@{org[1]}"
            out.append(
                [
                    cid,
                    "email",
                    "工作",
                    work,
                    work,
                    None,
                    None,
                    None,
                    None,
                    None,
                    False,
                    False,
                    created,
                    created,
                    1,
                ]
            )
        if not english and rand() < 0.45:
            if rand() < 0.4:
                wechat = "wxid_" + "".join(rng.choices(_WECHAT_ALPHABET, k=10))
            else:
                wechat = f"{local.replace('.', '_')}{rng.randrange(10, 9999)}"
            out.append(
                [
                    cid,
                    "wechat",
                    "微信",
                    wechat,
                    wechat.lower(),
                    None,
                    None,
                    None,
                    None,
                    None,
                    True,
                    False,
                    created,
                    created,
                    1,
                ]
            )
        if rand() < 0.35:
            district = city.districts[rng.randrange(len(city.districts))]
            street = vocab.STREETS[rng.randrange(len(vocab.STREETS))]
            community = vocab.COMMUNITIES[rng.randrange(len(vocab.COMMUNITIES))]
            line = (
                f"{district}{street}{rng.randrange(1, 999)}号{city.city.removesuffix('市')}{community}"
                f"{rng.randrange(1, 40)}栋{rng.randrange(1, 30)}0{rng.randrange(1, 6)}室"
            )
            postal = f"{city.postal_prefix}{rng.randrange(1000):03d}"
            out.append(
                [
                    cid,
                    "address",
                    "家庭",
                    line,
                    line.lower(),
                    "CN",
                    city.region,
                    city.city,
                    district,
                    postal,
                    True,
                    False,
                    created,
                    created,
                    1,
                ]
            )

    def orders(
        self, cid: int, signup: dt.datetime, b2b: bool, team: TeamRef
    ) -> tuple[int, int, dt.datetime | None]:
        """Orders following the planted truth (:mod:`rapport.demo.truth`): segment, BG/NBD, spend.

        Returns (purchases, spend in cents of the purchases, last purchase).
        """
        rng, rand = self.rng, self.rng.random
        seg_i = _SEGMENTS.pick(rng)
        seg = truth.SEGMENTS[seg_i]
        if not seg.buys:
            self.truth.append(truth.CustomerTruth(cid, seg_i, -1, truth.NO_COMPLAINT, False))
            return 0, 0, None
        group = _WORK if b2b else _GROUPS.pick(rng)
        lam = rng.gammavariate(seg.r, 1 / seg.alpha)  # purchases per day while active
        drop = rng.betavariate(seg.a, seg.b)
        nu = rng.gammavariate(seg.q, 1 / seg.gamma)
        first = signup + dt.timedelta(days=rng.expovariate(1 / truth.FIRST_PURCHASE_DAYS))
        times: list[dt.datetime] = []
        dropped = False
        if first < ANCHOR:
            horizon = (ANCHOR - first).total_seconds() / 86400
            offsets, t = [0.0], 0.0
            while len(offsets) <= self.ctx.max_orders:
                t += rng.expovariate(max(lam, 1e-12))
                if t > horizon:
                    break
                offsets.append(t)
                if rand() < drop:  # dropout after a repeat purchase
                    dropped = True
                    break
            times = [first + dt.timedelta(days=o) for o in offsets]
        complaint, churned = truth.NO_COMPLAINT, False
        if times and rand() < truth.COMPLAINT_RATE:
            at = first + (ANCHOR - first) * rand()
            unresolved = rand() < truth.UNRESOLVED_RATE
            complaint = truth.UNRESOLVED if unresolved else truth.RESOLVED
            active = not dropped or times[-1] > at
            risk = truth.CHURN_IF_UNRESOLVED if unresolved else truth.CHURN_IF_RESOLVED
            if rand() < risk and active:
                churned = True
                times = [x for x in times if x <= at]
            self.complaint(cid, team, at, unresolved)
        self.truth.append(truth.CustomerTruth(cid, seg_i, group, complaint, churned))
        times = [x for x in times[: self.ctx.max_orders] if x >= self.window_start]
        if not times:
            return 0, 0, None
        home = truth.AFFINITY_GROUPS[truth.GROUP_NAMES[group]]
        channels = _B2B_CHANNELS if b2b else _ORDER_CHANNELS
        bought, spent = 0, 0
        for k, ordered in enumerate(times):
            target = rng.gammavariate(seg.p, 1 / nu) * truth.SEASONALITY[ordered.month] * 100  # cents
            if b2b:
                target *= 2
            total = self.order(cid, k, ordered, "completed", target, home, b2b, channels)
            bought += 1
            spent += total
            r = rand()
            if r < 0.1:
                # Extra orders next to the planted purchase: an abandoned checkout or a return.
                extra = ordered + dt.timedelta(hours=1 + rand() * 48)
                if extra < ANCHOR:
                    status = "cancelled" if r < 0.06 else "refunded"
                    self.order(cid, len(times) + k, extra, status, target, home, b2b, channels)
        return bought, spent, times[-1]

    def order(
        self,
        cid: int,
        k: int,
        ordered: dt.datetime,
        status: str,
        target: float,
        home: tuple[int, ...],
        b2b: bool,
        channels: Weighted,
    ) -> int:
        """One order with lines filled up to about ``target`` cents; returns its total."""
        rng, rand, ts, money = self.rng, self.rng.random, self.ts, self.money
        cats = self.by_category
        self.order_seq += 1
        oid = self.order_seq
        lines = self.rows["order_line"]
        total = cost = 0
        for _ in range(4):
            if rand() < truth.HOME_GROUP_SHARE:
                pool = cats[home[rng.randrange(len(home))]]
            else:
                pool = cats[rng.randrange(len(cats))]
            product = pool[int(len(pool) * rand() ** 1.6)]
            price = product.price
            qty = max(1, min(3, round((target - total) / price)))
            gross = price * qty
            discount = int(gross * rng.uniform(0.05, 0.15)) if rand() < 0.25 else 0
            total += gross - discount
            cost += product.cost * qty
            lines.append(
                [
                    oid,
                    product.id,
                    qty,
                    money(price),
                    money(product.cost),
                    money(discount),
                    money(gross - discount),
                ]
            )
            if total >= 0.7 * target:
                break
        paid = None
        if status != "cancelled" or rand() < 0.5:
            paid = ordered + dt.timedelta(minutes=rand() * 30)
        completed = None
        if status != "cancelled":
            completed = ordered + dt.timedelta(days=1 + rand() * 6)
            if completed > ANCHOR:  # still on its way at the anchor
                status, completed = "paid", None
        self.rows["sales_order"].append(
            [
                oid,
                f"DM{ordered:%Y%m%d}-{cid}-{k + 1}",
                cid,
                status,
                channels.pick(rng),
                "CNY",
                money(total),
                money(cost),
                money(total - cost),
                ts(ordered),
                ts(paid) if paid else None,
                ts(completed) if completed else None,
                ts(ordered),
                ts(completed or paid or ordered),
                1,
            ]
        )
        return total

    def complaint(self, cid: int, team: TeamRef, at: dt.datetime, unresolved: bool) -> None:
        """The planted churn driver: an inbound complaint call and its (maybe still open) task."""
        ts, rand = self.ts, self.rng.random
        kind, direction, channel, subject, body = truth.COMPLAINT_CALL
        when = ts(at)
        self.rows["interaction"].append(
            [cid, kind, direction, channel, team.users["service"], when, subject, body, when, when, 1]
        )
        latest = ANCHOR - dt.timedelta(hours=1)
        created = min(at, latest)
        due = at + dt.timedelta(days=3)
        status, completed = "open", None
        if not unresolved:
            status, completed = "done", min(at + dt.timedelta(days=rand() * 3), latest)
        title, description = truth.COMPLAINT_TASK
        self.rows["task"].append(
            [
                cid,
                title,
                description,
                status,
                "high",
                ts(due),
                team.users["service"],
                ts(completed) if completed else None,
                ts(created),
                ts(completed or created),
                1,
            ]
        )

    def interactions(self, cid: int, team: TeamRef, signup: dt.datetime) -> int:
        rng, rand, ts = self.rng, self.rng.random, self.ts
        if rand() > 0.45:
            return 0
        n = 1 if (r := rand()) < 0.5 else 2 if r < 0.8 else 3 if r < 0.93 else 4
        span = (ANCHOR - signup).total_seconds()
        products, templates = self.ctx.products, vocab.INTERACTIONS
        out = self.rows["interaction"]
        for _ in range(n):
            kind, direction, channel, subject, body = templates[rng.randrange(len(templates))]
            product = products[rng.randrange(len(products))].name
            r = rand()
            if kind in ("call", "chat"):
                author = "service" if r < 0.5 else "sales" if r < 0.9 else "crm"
            else:
                author = "sales" if r < 0.6 else "lead" if r < 0.8 else "service"
            at = ts(signup + dt.timedelta(seconds=rng.uniform(0, span)))
            out.append(
                [
                    cid,
                    kind,
                    direction,
                    channel,
                    team.users[author],
                    at,
                    subject,
                    body.format(product=product),
                    at,
                    at,
                    1,
                ]
            )
        return n

    def tasks(self, cid: int, team: TeamRef, signup: dt.datetime, at_risk: bool) -> int:
        rng, rand, ts = self.rng, self.rng.random, self.ts
        if not at_risk and rand() > 0.18:
            return 0
        n = 1 if rand() < 0.8 else 2
        latest = ANCHOR - dt.timedelta(hours=1)
        out = self.rows["task"]
        for i in range(n):
            if at_risk and i == 0:
                title, description = vocab.TASKS[-1]  # win-back call for a customer going quiet
            else:
                title, description = vocab.TASKS[rng.randrange(len(vocab.TASKS) - 1)]
            horizon = (ANCHOR - signup).total_seconds() + 21 * 86400
            due = signup + dt.timedelta(seconds=rng.uniform(86400, horizon))
            created = min(max(signup, due - dt.timedelta(days=rng.uniform(1, 14))), latest)
            status, completed = "open", None
            if due < ANCHOR:
                r = rand()
                if r < 0.8:
                    status = "done"
                    completed = min(max(created, due - dt.timedelta(hours=rand() * 48)), latest)
                elif r < 0.85:
                    status = "cancelled"
            r = rand()
            priority = "low" if r < 0.25 else "normal" if r < 0.8 else "high"
            assignee = team.users["sales" if rand() < 0.6 else "service"]
            out.append(
                [
                    cid,
                    title,
                    description,
                    status,
                    priority,
                    ts(due),
                    assignee,
                    ts(completed) if completed else None,
                    ts(created),
                    ts(completed or created),
                    1,
                ]
            )
        return n


def _sqlite_ts(value: dt.datetime) -> str:
    # SQLAlchemy's SQLite DATETIME storage format (always six fractional digits), in UTC.
    return value.isoformat(" ", "microseconds")[:26]


def _float_money(cents: int) -> float:
    # What SQLAlchemy binds for Numeric on SQLite; cents/100 rounds to the same double.
    return cents / 100


def _decimal_money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _same(value: Any) -> Any:
    return value
