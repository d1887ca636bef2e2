"""Deterministic demo data: teams, users, products, organisations, customers and their history.

Demo accounts (all share one password: ``RAPPORT_DEMO_PASSWORD`` or ``DEFAULT_DEMO_PASSWORD``):

=============  ==============  ===========
username       role            team
=============  ==============  ===========
admin          admin           (none)
lead.east      team_lead       华东 East
crm.east       crm_specialist  华东 East
sales.east     sales_rep       华东 East
service.east   service_rep     华东 East
analyst.east   data_analyst    华东 East
lead.north     team_lead       华北 North
crm.north      crm_specialist  华北 North
sales.north    sales_rep       华北 North
service.north  service_rep     华北 North
analyst.north  data_analyst    华北 North
=============  ==============  ===========

Purchases, spend, complaints, category mixes and seasonality follow the planted truth documented
in :mod:`rapport.demo.truth` (latent BG/NBD segments and more), so analytics have something to find.

The same seed always yields the same rows: every random draw comes from one ``random.Random(seed)``
in a fixed order and every timestamp is an offset from ``ANCHOR`` (never the wall clock). Rows are
written with batched Core ``executemany`` inserts and ids allocated here, so children can point at
their parents without a round trip per row.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing import get_context
from typing import Any

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.orm import Session

from rapport.audit.chain import PendingEvent
from rapport.db import record_audit
from rapport.demo import vocab
from rapport.demo.chunks import (
    ANCHOR,
    CITIES,
    COLUMNS,
    TABLES,
    Chunk,
    Context,
    ProductRef,
    TeamRef,
    Weighted,
    generate_chunk,
    init_worker,
)
from rapport.errors import InvalidInput
from rapport.models import Customer, Organisation, Product, Team, User
from rapport.models.base import table_of
from rapport.security.crypto import blind_index
from rapport.security.keyring import keyring_for, sealed_columns
from rapport.security.passwords import hash_password, policy_problems

DEFAULT_DEMO_PASSWORD = "Lotus-Harbour-Tide-2026"
DEFAULT_MAX_ORDERS = 80

TEAMS = {"east": "华东 East", "north": "华北 North"}
_TEAM_DESCRIPTIONS = {"east": "华东及华南、西南区域销售与服务", "north": "华北、东北及西北区域销售与服务"}
# (username prefix, role, display name prefix)
_TEAM_ROLES = (
    ("lead", "team_lead", "团队主管"),
    ("crm", "crm_specialist", "CRM 专员"),
    ("sales", "sales_rep", "销售代表"),
    ("service", "service_rep", "客服代表"),
    ("analyst", "data_analyst", "数据分析师"),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    username: str
    role: str
    team: str | None
    display_name: str


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "admin", None, "系统管理员"),
    *(
        DemoUser(f"{prefix}.{key}", role, TEAMS[key], f"{label}（{TEAMS[key].split()[0]}）")
        for key in TEAMS
        for prefix, role, label in _TEAM_ROLES
    ),
)

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class DemoConfig:
    customers: int = 5000
    seed: int = 42
    password: str = DEFAULT_DEMO_PASSWORD
    max_orders_per_customer: int = DEFAULT_MAX_ORDERS
    chunk_size: int = 5000  # customers per generated chunk; part of what the seed reproduces
    workers: int | None = None  # generator processes; 0: generate in-process; None: cores - 1


@dataclass(slots=True)
class DemoResult:
    counts: dict[str, int]
    users: list[tuple[DemoUser, bool]]  # (user, created now); existing users keep their password
    seconds: float
    first_customer: str | None = None

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


class DemoError(InvalidInput):
    """The demo cannot be loaded as asked (e.g. the password fails the policy)."""


_ORG_STAGES = ("customer", "customer", "customer", "prospect", "lead")
_T_TEAM = table_of(Team)
_T_USER = table_of(User)
_T_PRODUCT = table_of(Product)
_T_ORG = table_of(Organisation)
_T_CUSTOMER = table_of(Customer)
# Tables whose ids the loader allocates (children point at them); the rest number themselves.
_EXPLICIT_IDS = ("product", "organisation", "customer", "sales_order", "contact_point")
# Contact values are sealed here, in the loading process, because the ciphertext is bound to the
# row id, which is only allocated here; the blind index is added for exact-match search.
_CONTACT_IN = COLUMNS["contact_point"]
_CONTACT_OUT = ("id", *_CONTACT_IN, "value_bidx")
_CONTACT_SEALED = tuple((_CONTACT_IN.index(c), c) for c in sealed_columns("contact_point"))
_CONTACT_KIND = _CONTACT_IN.index("kind")
_CONTACT_NORM = _CONTACT_IN.index("value_normalized")
COUNT_NAMES = {
    "product": "products",
    "organisation": "organisations",
    "customer": "customers",
    "customer_tag": "customer_tags",
    "customer_search_term": "search_terms",
    "contact_point": "contact_points",
    "sales_order": "orders",
    "order_line": "order_lines",
    "interaction": "interactions",
    "task": "tasks",
    "consent_event": "consents",
}


class _Writer:
    """Driver-level bulk inserts: COPY with psycopg, one executemany per batch elsewhere."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.copy = conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"
        self.mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"

    def write(self, table: str, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        if not rows:
            return
        names = ", ".join(columns)
        if self.copy:
            raw: Any = self.conn.connection.driver_connection
            with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join([self.mark] * len(columns))
        # Table and column names come from the models, never from input.
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
        self.conn.exec_driver_sql(sql, list(map(tuple, rows)))


@contextmanager
def _sqlite_cache(conn: Connection) -> Iterator[None]:
    """A bigger page cache while loading: index inserts at random keys otherwise thrash it."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql("PRAGMA cache_size=-262144")  # KiB: 256 MiB
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")


class _Loader:
    def __init__(self, session: Session, config: DemoConfig, progress: ProgressFn | None) -> None:
        self.session = session
        self.config = config
        self.rng = random.Random(config.seed)  # reference data; customers use per-chunk generators
        self.progress: ProgressFn = progress or (lambda _phase, _done, _total: None)
        self.counts: dict[str, int] = dict.fromkeys(COUNT_NAMES.values(), 0)
        self.next_id: dict[str, int] = {}
        self.teams: dict[str, TeamRef] = {}
        self.products: list[ProductRef] = []
        self.pg = session.get_bind().dialect.name == "postgresql"

    def _reserve_ids(self) -> None:
        if self.pg:
            # Ids are allocated here, so keep other writers of these tables out until commit;
            # readers are not blocked.
            self.session.execute(text(f"LOCK TABLE {', '.join(_EXPLICIT_IDS)} IN EXCLUSIVE MODE"))
        for name in _EXPLICIT_IDS:
            table = Customer.metadata.tables[name]
            top = self.session.execute(select(func.max(table.c.id))).scalar()
            self.next_id[name] = int(top or 0) + 1

    def _take_ids(self, name: str, n: int) -> int:
        first = self.next_id[name]
        self.next_id[name] = first + n
        return first

    def _sync_sequences(self) -> None:
        if not self.pg:
            return
        # The serial sequences never saw the explicit ids; move them past the ones used.
        for name in _EXPLICIT_IDS:
            self.session.execute(
                text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v, false)"),
                {"t": name, "v": self.next_id[name]},
            )

    def teams_and_users(self) -> list[tuple[DemoUser, bool]]:
        session = self.session
        founded = ANCHOR - dt.timedelta(days=1000)
        for key, name in TEAMS.items():
            team_id = session.execute(select(_T_TEAM.c.id).where(_T_TEAM.c.name == name)).scalar()
            if team_id is None:
                team_id = session.execute(
                    insert(_T_TEAM)
                    .values(
                        name=name,
                        description=_TEAM_DESCRIPTIONS[key],
                        created_at=founded,
                        updated_at=founded,
                        version=1,
                    )
                    .returning(_T_TEAM.c.id)
                ).scalar_one()
            self.teams[key] = TeamRef(key, int(team_id), {})
        existing: dict[str, int] = {
            row.username: row.id
            for row in session.execute(
                select(_T_USER.c.username, _T_USER.c.id).where(
                    _T_USER.c.username.in_([u.username for u in DEMO_USERS])
                )
            )
        }
        missing = [u for u in DEMO_USERS if u.username not in existing]
        for user in missing:
            problems = policy_problems(self.config.password, user.username)
            if problems:
                raise DemoError(f"demo password {'; '.join(problems)} (user {user.username})")
        # One hash for all: they share the password, and argon2 is deliberately slow.
        hashed = hash_password(self.config.password) if missing else None
        out: list[tuple[DemoUser, bool]] = []
        for user in DEMO_USERS:
            team_key = next((k for k, n in TEAMS.items() if n == user.team), None)
            user_id = existing.get(user.username)
            if user_id is None:
                user_id = session.execute(
                    insert(_T_USER)
                    .values(
                        username=user.username,
                        display_name=user.display_name,
                        email=f"{user.username}@rapport.example",
                        password_hash=hashed,
                        role=user.role,
                        team_id=self.teams[team_key].id if team_key else None,
                        is_active=True,
                        preferred_language="zh-CN",
                        created_at=founded,
                        updated_at=founded,
                        version=1,
                    )
                    .returning(_T_USER.c.id)
                ).scalar_one()
            if team_key:
                self.teams[team_key].users[user.username.split(".")[0]] = int(user_id)
            out.append((user, user.username not in existing))
        return out

    def load_products(self) -> None:
        """About 200 products over ten categories; a re-run reuses the catalogue (SKUs are unique)."""
        rng = self.rng
        generated: list[tuple[dict[str, Any], int]] = []
        for ci, cat in enumerate(vocab.CATEGORIES):
            lo, hi = math.log(cat.price_low), math.log(cat.price_high)
            for n, (item, line) in enumerate(itertools.product(cat.items, vocab.PRODUCT_LINES[:3])):
                yuan = math.exp(rng.uniform(lo, hi))
                step = 100 if yuan >= 1000 else 10
                cents = int(yuan // step * step + step - 1) * 100  # shop prices end in 9
                cost_cents = int(cents * rng.uniform(0.42, 0.72))
                added = ANCHOR - dt.timedelta(days=900 - ci)
                row: dict[str, Any] = {
                    "sku": f"DEMO-{cat.code}-{n + 1:03d}",
                    "name": f"{item} {line}",
                    "category": cat.name,
                    "list_price": Decimal(cents).scaleb(-2),
                    "unit_cost": Decimal(cost_cents).scaleb(-2),
                    "currency": "CNY",
                    "is_active": rng.random() > 0.05,
                    "created_at": added,
                    "updated_at": added,
                    "version": 1,
                }
                generated.append((row, ci))
        stored = {
            r.sku: r
            for r in self.session.execute(
                select(
                    _T_PRODUCT.c.id, _T_PRODUCT.c.sku, _T_PRODUCT.c.list_price, _T_PRODUCT.c.unit_cost
                ).where(_T_PRODUCT.c.sku.in_([g["sku"] for g, _ in generated]))
            )
        }
        new_rows = []
        for row, ci in generated:
            found = stored.get(row["sku"])
            product_id: int
            price: Decimal
            cost: Decimal
            if found is None:
                product_id = row["id"] = self._take_ids("product", 1)
                new_rows.append(row)
                price, cost = row["list_price"], row["unit_cost"]
            else:
                product_id, price = found.id, found.list_price
                cost = found.unit_cost if found.unit_cost is not None else price * Decimal("0.6")
            self.products.append(ProductRef(product_id, row["name"], int(price * 100), int(cost * 100), ci))
        if new_rows:
            self.session.connection().execute(insert(_T_PRODUCT), new_rows)
        self.counts["products"] = len(new_rows)

    def load_organisations(self) -> None:
        """B2B accounts: about 300 per 5,000 customers, owned by the team covering their city."""
        rng = self.rng
        n = max(1, round(self.config.customers * 0.06)) if self.config.customers else 0
        sizes = Weighted(vocab.ORG_SIZES)
        first = self._take_ids("organisation", n)
        rows = []
        for i in range(n):
            city = CITIES.pick(rng)
            team = self.teams[city.team]
            prefix = vocab.ORG_PREFIXES[rng.randrange(len(vocab.ORG_PREFIXES))]
            kind, industry, kind_en = vocab.ORG_KINDS[rng.randrange(len(vocab.ORG_KINDS))]
            latin = vocab.ORG_PREFIX_LATIN[prefix]
            org_id = first + i
            # Reserved example.com names: demo addresses must never reach a real mailbox.
            domain = f"{latin.lower()}-{kind_en.lower()}-{org_id}.example.com"
            created = ANCHOR - dt.timedelta(days=rng.uniform(60, 1000))
            rows.append(
                {
                    "id": org_id,
                    "name": f"{city.city.removesuffix('市')}{prefix}{kind}有限公司",
                    "name_latin": f"{latin} {kind_en} Co., Ltd.",
                    "industry": industry,
                    "size_band": sizes.pick(rng),
                    "website": f"https://www.{domain}",
                    "region": city.region,
                    "city": city.city,
                    "lifecycle_stage": ("customer", "customer", "customer", "prospect", "lead")[
                        rng.randrange(5)
                    ],
                    "owner_id": team.users["sales" if rng.random() < 0.8 else "lead"],
                    "team_id": team.id,
                    "attributes": {},
                    "created_at": created,
                    "updated_at": created,
                    "version": 1,
                }
            )
            team.orgs.append((org_id, domain))
        if rows:
            self.session.connection().execute(insert(_T_ORG), rows)
        self.counts["organisations"] = n

    def _chunks(self, ctx: Context) -> Iterator[Chunk]:
        size, total = max(1, self.config.chunk_size), self.config.customers
        specs = [(k, first, min(size, total - first)) for k, first in enumerate(range(0, total, size))]
        workers = self.config.workers
        if workers is None:
            # The loading process writes while the others generate; a lone chunk is not worth a pool.
            workers = max(1, (os.cpu_count() or 1) - 1) if len(specs) > 1 else 0
        workers = min(workers, len(specs))
        if workers == 0:
            init_worker(ctx)
            for spec in specs:
                yield generate_chunk(*spec)
            return
        # spawn, not fork: the parent holds open database connections and threads.
        pool = ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=init_worker, initargs=(ctx,)
        )
        try:
            pending: deque[Future[Chunk]] = deque()
            for spec in specs:
                pending.append(pool.submit(generate_chunk, *spec))
                if len(pending) > 2 * workers:  # bounded read-ahead keeps memory flat
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def load_customers(self) -> str | None:
        total = self.config.customers
        conn = self.session.connection()
        ctx = Context(
            seed=self.config.seed,
            max_orders=self.config.max_orders_per_customer,
            sqlite=conn.dialect.name == "sqlite",
            customer_base=self._take_ids("customer", total),
            teams=self.teams,
            products=self.products,
        )
        writer = _Writer(conn)
        first_customer, done = None, 0
        self.progress("customers", 0, total)
        with _sqlite_cache(conn):
            for chunk in self._chunks(ctx):
                self._write_chunk(writer, chunk)
                if first_customer is None:
                    first_customer = chunk.first_customer
                done += len(chunk.rows["customer"])
                self.progress("customers", done, total)
        return first_customer

    def _write_chunk(self, writer: _Writer, chunk: Chunk) -> None:
        orders, lines = chunk.rows["sales_order"], chunk.rows["order_line"]
        shift = self._take_ids("sales_order", len(orders)) - 1  # chunk-local ids start at 1
        for order in orders:
            order[0] += shift
        for line in lines:
            line[0] += shift
        contacts = self._seal_contacts(chunk.rows["contact_point"])
        for table in TABLES:
            if table == "contact_point":
                writer.write(table, _CONTACT_OUT, contacts)
            else:
                writer.write(table, COLUMNS[table], chunk.rows[table])
            self.counts[COUNT_NAMES[table]] += len(chunk.rows[table])

    def _seal_contacts(self, rows: list[list[Any]]) -> list[list[Any]]:
        ring = keyring_for(self.session, for_write=True)
        first = self._take_ids("contact_point", len(rows))
        out = []
        for cid, row in enumerate(rows, start=first):
            bidx = blind_index(row[_CONTACT_KIND], row[_CONTACT_NORM])
            for i, column in _CONTACT_SEALED:
                row[i] = ring.seal("contact_point", column, cid, row[i])
            out.append([cid, *row, bidx])
        return out

    def _consent_state(self) -> None:
        """The current-state rows the consent module answers from, one per planted consent."""
        self.session.execute(
            text(
                "INSERT INTO consent_state (customer_id, purpose, partner_key, granted, event_id, at) "
                "SELECT e.customer_id, e.purpose, 0, e.granted, e.id, e.at FROM consent_event e "
                "WHERE e.partner_id IS NULL AND NOT EXISTS (SELECT 1 FROM consent_state s "
                "WHERE s.customer_id = e.customer_id AND s.purpose = e.purpose AND s.partner_key = 0)"
            )
        )

    def run(self) -> DemoResult:
        started = time.perf_counter()
        self.progress("users", 0, 1)
        users = self.teams_and_users()
        self._reserve_ids()
        self.load_products()
        self.load_organisations()
        first_customer = self.load_customers()
        self._consent_state()
        self._sync_sequences()
        counts = dict(self.counts)
        record_audit(
            self.session,
            PendingEvent(
                action="demo_load",
                resource="system",
                actor_kind="system",
                details={"seed": self.config.seed, **counts},
            ),
        )
        return DemoResult(counts, users, time.perf_counter() - started, first_customer)


def load_demo(session: Session, config: DemoConfig, progress: ProgressFn | None = None) -> DemoResult:
    """Load demo data inside the caller's unit of work, which commits it with one audit event."""
    if config.customers < 0:
        raise DemoError("customers must not be negative")
    if config.max_orders_per_customer < 0:
        raise DemoError("max orders per customer must not be negative")
    return _Loader(session, config, progress).run()


def customer_count(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(_T_CUSTOMER)).scalar_one())
