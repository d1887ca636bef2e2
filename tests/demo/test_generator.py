from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import phonenumbers
import pytest
from sqlalchemy import Engine, func, select, text

from rapport.audit.chain import verify_chain
from rapport.config import Settings
from rapport.customers.search import terms_for
from rapport.db import Database
from rapport.demo.generator import (
    ANCHOR,
    DEFAULT_DEMO_PASSWORD,
    DEMO_USERS,
    DemoConfig,
    DemoError,
    DemoResult,
    load_demo,
)
from rapport.models import (
    AuditEvent,
    ContactPoint,
    Customer,
    CustomerSearchTerm,
    CustomerTag,
    Order,
    OrderLine,
    Product,
    Team,
    User,
)
from rapport.models.base import table_of
from rapport.security.crypto import blind_index
from rapport.security.keyring import load_keyring
from rapport.security.passwords import policy_problems
from tests.demo.conftest import api_client

MakeUrl = Callable[[], str]
MakeEngine = Callable[[str], Engine]


def _load(engine: Engine, **kw: Any) -> DemoResult:
    config = DemoConfig(**{"customers": 60, "seed": 11, "chunk_size": 25, "workers": 0, **kw})
    with Database(engine).unit(write=True) as session:
        return load_demo(session, config)


def _rows(engine: Engine, stmt: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(stmt).all())


def _customers(engine: Engine) -> list[tuple[Any, ...]]:
    c = table_of(Customer).c
    cols = (
        c.id,
        c.display_name,
        c.family_name,
        c.birth_date,
        c.city,
        c.lifecycle_stage,
        c.owner_id,
        c.created_at,
    )
    return [tuple(r) for r in _rows(engine, select(*cols).order_by(c.id))]


def test_same_seed_gives_identical_data_in_two_databases(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    first, second = engines(fresh_url()), engines(fresh_url())
    a, b = _load(first), _load(second)

    assert a.counts == b.counts
    assert a.counts["customers"] == 60
    assert a.first_customer == b.first_customer
    assert _customers(first)[0][1] == a.first_customer
    assert _customers(first) == _customers(second)
    o = table_of(Order).c
    orders = select(o.order_number, o.total_amount, o.ordered_at).order_by(o.id)
    assert _rows(first, orders) == _rows(second, orders)


def test_a_different_seed_gives_different_customers(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    first, second = engines(fresh_url()), engines(fresh_url())
    _load(first, seed=1)
    _load(second, seed=2)
    assert [r[1] for r in _customers(first)] != [r[1] for r in _customers(second)]


def test_worker_processes_produce_the_same_rows_as_in_process(
    fresh_url: MakeUrl, engines: MakeEngine
) -> None:
    inline, pooled = engines(fresh_url()), engines(fresh_url())
    a = _load(inline, customers=70, chunk_size=20, workers=0)
    b = _load(pooled, customers=70, chunk_size=20, workers=2)
    assert a.counts == b.counts
    assert _customers(inline) == _customers(pooled)


def test_order_totals_equal_their_lines(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    result = _load(engine)
    lines: dict[int, list[Any]] = defaultdict(list)
    ln = table_of(OrderLine).c
    for line in _rows(
        engine,
        select(ln.order_id, ln.quantity, ln.unit_price, ln.unit_cost, ln.discount_amount, ln.line_total),
    ):
        lines[line.order_id].append(line)
    o = table_of(Order).c
    orders = _rows(engine, select(o.id, o.total_amount, o.cost_amount, o.margin_amount, o.status))

    assert len(orders) == result.counts["orders"] > 60
    assert sum(len(v) for v in lines.values()) == result.counts["order_lines"]
    for order in orders:
        mine = lines[order.id]
        assert 1 <= len(mine) <= 4
        for line in mine:
            assert line.line_total == line.unit_price * line.quantity - line.discount_amount
        assert order.total_amount == sum(line.line_total for line in mine)
        assert order.cost_amount == sum(line.unit_cost * line.quantity for line in mine)
        assert order.margin_amount == order.total_amount - order.cost_amount
    statuses = {o.status for o in orders}
    assert "completed" in statuses
    assert statuses <= {"completed", "cancelled", "refunded", "paid"}


def test_every_phone_is_valid_e164_and_every_customer_is_searchable(
    fresh_url: MakeUrl, engines: MakeEngine
) -> None:
    engine = engines(fresh_url())
    _load(engine, customers=150)
    cp = table_of(ContactPoint).c
    rows = _rows(
        engine, select(cp.id, cp.value, cp.value_normalized, cp.value_bidx).where(cp.kind == "phone")
    )
    assert len(rows) > 100
    with engine.connect() as conn:
        ring = load_keyring(conn)
    phones = []
    for rid, sealed, sealed_norm, bidx in rows:
        # Stored sealed under this row's id; the blind index matches the plaintext.
        value = ring.open_text("contact_point", "value", rid, sealed)
        phones.append((value, ring.open_text("contact_point", "value_normalized", rid, sealed_norm)))
        assert bidx == blind_index("phone", value or "")
    for value, normalised in phones:
        assert value is not None
        parsed = phonenumbers.parse(value)
        assert phonenumbers.is_valid_number(parsed), value
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == value
        assert normalised == value

    c, t = table_of(Customer).c, table_of(CustomerSearchTerm).c
    terms: dict[int, set[str]] = defaultdict(set)
    for term, cid in _rows(engine, select(t.term, t.customer_id)):
        terms[cid].add(term)
    customers = _rows(engine, select(c.id, c.display_name, c.family_name, c.given_name, c.name_latin))
    assert len(customers) == 150
    for row in customers:
        # Exactly what the customer service would index for the same names.
        assert terms[row.id] == terms_for(row.display_name, row.family_name, row.given_name, row.name_latin)
    chinese = [r for r in customers if not r.display_name.isascii()]
    assert 0.8 < len(chinese) / len(customers) < 0.97


def test_primary_flags_one_per_kind(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    _load(engine)
    cp = table_of(ContactPoint).c
    stmt = (
        select(cp.customer_id, cp.kind, func.count())
        .where(cp.is_primary.is_(True))
        .group_by(cp.customer_id, cp.kind)
        .having(func.count() > 1)
    )
    assert _rows(engine, stmt) == []


def test_history_lies_in_the_two_years_before_the_anchor(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    _load(engine)
    o, c = table_of(Order).c, table_of(Customer).c
    first, last = _rows(engine, select(func.min(o.ordered_at), func.max(o.ordered_at)))[0]
    window_start = ANCHOR - dt.timedelta(days=730)
    # SQLite hands back naive values from aggregates; they are stored in UTC.
    first, last = (v if v.tzinfo else v.replace(tzinfo=dt.UTC) for v in (_parse(first), _parse(last)))
    assert window_start <= first < last <= ANCHOR
    youngest, oldest = _rows(engine, select(func.max(c.birth_date), func.min(c.birth_date)))[0]
    assert _date(youngest) <= dt.date(2008, 11, 1)
    assert _date(oldest) >= dt.date(1951, 11, 1)


def _parse(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def test_lifecycle_stage_follows_behaviour(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    _load(engine, customers=200, chunk_size=200)
    c, o = table_of(Customer).c, table_of(Order).c
    bought = dict(
        _rows(
            engine,
            select(o.customer_id, func.count()).where(o.status != "cancelled").group_by(o.customer_id),
        )
    )
    stages = dict(_rows(engine, select(c.id, c.lifecycle_stage)))
    for cid, stage in stages.items():
        if cid in bought:
            assert stage in {"customer", "loyal", "at_risk", "churned"}, (cid, stage)
        else:
            assert stage in {"lead", "prospect"}, (cid, stage)
        if stage == "loyal":
            assert bought[cid] >= 6
    assert {"lead", "customer", "churned"} <= set(stages.values())


def test_tags_and_organisations(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    result = _load(engine, customers=200, chunk_size=200)
    assert result.counts["organisations"] == 12  # 6 % of customers
    c, tg = table_of(Customer).c, table_of(CustomerTag).c
    members = {r[0] for r in _rows(engine, select(c.id).where(c.organisation_id.is_not(None)))}
    tagged = {r[0] for r in _rows(engine, select(tg.customer_id).where(tg.tag == "企业客户"))}
    assert members
    assert tagged == members


def test_demo_users_log_in_through_the_api(
    fresh_url: MakeUrl, engines: MakeEngine, settings: Settings
) -> None:
    engine = engines(fresh_url())
    _load(engine)
    with api_client(settings, engine) as client:
        for user in DEMO_USERS:
            r = client.post(
                "/api/v1/auth/token", data={"username": user.username, "password": DEFAULT_DEMO_PASSWORD}
            )
            assert r.status_code == 200, (user.username, r.text)
        token = client.post(
            "/api/v1/auth/token", data={"username": "sales.east", "password": DEFAULT_DEMO_PASSWORD}
        ).json()["access_token"]
        listed = client.get("/api/v1/customers?limit=200", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    east = _rows(engine, select(table_of(Team).c.id).where(table_of(Team).c.name == "华东 East"))[0][0]
    items = listed.json()["items"]
    assert items
    assert {i["team_id"] for i in items} == {east}


def test_new_records_after_a_load_get_fresh_ids(
    fresh_url: MakeUrl, engines: MakeEngine, settings: Settings
) -> None:
    """The loader allocates ids itself; PostgreSQL's sequences must be moved past them."""
    engine = engines(fresh_url())
    _load(engine)
    top = _rows(engine, select(func.max(table_of(Customer).c.id)))[0][0]
    with api_client(settings, engine) as client:
        token = client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": DEFAULT_DEMO_PASSWORD}
        ).json()["access_token"]
        r = client.post(
            "/api/v1/customers",
            json={"display_name": "新客户测试"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 201, r.text
    assert r.json()["id"] == top + 1


def test_one_summary_audit_event_keeps_the_chain_valid(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    result = _load(engine)
    a = table_of(AuditEvent).c
    events = _rows(engine, select(a.action, a.resource, a.actor_kind, a.details))
    assert [(e.action, e.resource, e.actor_kind) for e in events] == [("demo_load", "system", "system")]
    assert events[0].details == {"seed": 11, **result.counts}
    with Database(engine).unit(write=False) as session:
        check = verify_chain(session)
    assert (check.ok, check.checked) == (True, 1)


def test_a_second_load_adds_customers_and_reuses_users_and_products(
    fresh_url: MakeUrl, engines: MakeEngine
) -> None:
    engine = engines(fresh_url())
    first = _load(engine)
    second = _load(engine, seed=12)
    assert first.counts["products"] == 240
    assert second.counts["products"] == 0
    assert [created for _, created in second.users] == [False] * len(DEMO_USERS)
    count = _rows(engine, select(func.count()).select_from(table_of(Customer)))[0][0]
    assert count == 120
    users = _rows(engine, select(func.count()).select_from(table_of(User)))[0][0]
    assert users == len(DEMO_USERS) == 11
    products = _rows(engine, select(func.count()).select_from(table_of(Product)))[0][0]
    assert products == 240


def test_a_weak_demo_password_is_refused_and_nothing_is_stored(
    fresh_url: MakeUrl, engines: MakeEngine
) -> None:
    engine = engines(fresh_url())
    with pytest.raises(DemoError, match="at least 12 characters"):
        _load(engine, password="short")
    assert _rows(engine, select(func.count()).select_from(table_of(Customer)))[0][0] == 0
    assert _rows(engine, select(func.count()).select_from(table_of(User)))[0][0] == 0


def test_the_default_password_satisfies_the_policy_for_every_demo_user() -> None:
    for user in DEMO_USERS:
        assert policy_problems(DEFAULT_DEMO_PASSWORD, user.username) == []


def test_documented_usernames() -> None:
    assert [(u.username, u.role, u.team) for u in DEMO_USERS] == [
        ("admin", "admin", None),
        ("lead.east", "team_lead", "华东 East"),
        ("crm.east", "crm_specialist", "华东 East"),
        ("sales.east", "sales_rep", "华东 East"),
        ("service.east", "service_rep", "华东 East"),
        ("analyst.east", "data_analyst", "华东 East"),
        ("lead.north", "team_lead", "华北 North"),
        ("crm.north", "crm_specialist", "华北 North"),
        ("sales.north", "sales_rep", "华北 North"),
        ("service.north", "service_rep", "华北 North"),
        ("analyst.north", "data_analyst", "华北 North"),
    ]
    import rapport.demo.generator as gen

    for user in DEMO_USERS:  # the docstring the README copies lists every account
        assert f"{user.username} " in (gen.__doc__ or "")


def test_zero_customers_loads_reference_data_only(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    result = _load(engine, customers=0)
    assert result.counts["customers"] == 0
    assert result.counts["products"] == 240
    assert result.first_customer is None
    assert result.rows == 240


def test_negative_sizes_are_refused(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    with pytest.raises(DemoError, match="customers must not be negative"):
        _load(engine, customers=-1)


def test_money_is_exact_decimal(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    engine = engines(fresh_url())
    _load(engine, customers=10, chunk_size=10)
    with engine.connect() as conn:
        total = conn.execute(select(table_of(Order).c.total_amount).limit(1)).scalar_one()
        raw = conn.execute(text("SELECT COUNT(*) FROM sales_order WHERE total_amount < 0")).scalar_one()
    assert isinstance(total, Decimal)
    assert total == total.quantize(Decimal("0.01"))
    assert raw == 0
