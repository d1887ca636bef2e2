"""The analytics store: what a sync copies (and never copies), incremental marks, deletions, erasure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from sqlalchemy import Select, insert, select, update
from sqlalchemy.orm import Session

from rapport.access.specs import CUSTOMER
from rapport.analytics import store as store_mod
from rapport.analytics.store import STORE_TABLES, AnalyticsStore, StoreTable
from rapport.errors import Forbidden
from rapport.models import (
    ContactPoint,
    Customer,
    CustomerScore,
    Interaction,
    Order,
    ProcessingRestriction,
    Task,
)
from rapport.models.base import table_of, utcnow
from rapport.privacy.classification import identifying_columns
from tests.factories import Factory

LATER = dt.timedelta(seconds=5)


@pytest.fixture
def store() -> Iterator[AnalyticsStore]:
    st = AnalyticsStore(duckdb.connect())
    yield st
    st.close()


@pytest.fixture
def world(factory: Factory) -> dict[str, int]:
    team = factory.team()
    owner = factory.user("sales_rep", team_id=team)
    a = factory.customer(
        owner_id=owner,
        team_id=team,
        display_name="王小明",
        family_name="王",
        given_name="小明",
        gender="male",
        birth_date=dt.date(1988, 7, 9),
        region="华东",
        city="上海市",
        preferred_channel="wechat",
        attributes={"vip_note": "身份证 110101198807090011"},
    )
    b = factory.customer(owner_id=owner, team_id=team, display_name="李娜", gender="female")
    factory.consent(a, "profiling")
    factory.consent(b, "profiling")
    factory.contact(a, value="+8613800138000")
    product = factory.product(category="tea")
    o1 = factory.order(a, total=Decimal("120.50"), ordered_at=dt.datetime(2025, 3, 1, 8, tzinfo=dt.UTC))
    factory.order_line(o1, product, quantity=2, unit_price=Decimal("60.25"))
    o2 = factory.order(b, total=Decimal("80.00"), status="paid")
    factory.order_line(o2, product)
    i = factory.interaction(a, subject="投诉", body="客户王小明说快递太慢")
    t = factory.task(a, title="回访王小明", description="电话 13800138000")
    return {"a": a, "b": b, "o1": o1, "o2": o2, "product": product, "interaction": i, "task": t}


def _rows(store: AnalyticsStore, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in store.con.execute(sql).fetchall()]


def _touch(db: Session, model: Any, record_id: int, **values: Any) -> None:
    db.execute(update(model).where(model.id == record_id).values(updated_at=utcnow() + LATER, **values))


def test_first_sync_copies_every_table(db: Session, store: AnalyticsStore, world: dict[str, int]) -> None:
    report = store.sync(db)
    assert report.upserted == {
        "customers": 2,
        "products": 1,
        "order_lines": 2,
        "orders": 2,
        "interactions": 1,
        "tasks": 1,
    }
    assert all(report.full.values())
    a = world["a"]
    assert _rows(
        store,
        f"SELECT customer_id, gender, birth_year, region, city, preferred_channel, lifecycle_stage, "
        f"profiling_allowed FROM customers WHERE customer_id = {a}",
    ) == [(a, "male", 1988, "华东", "上海市", "wechat", "customer", True)]
    assert _rows(
        store,
        "SELECT customer_id, ordered_at, status, total_amount, margin_amount FROM orders "
        f"WHERE order_id = {world['o1']}",
    ) == [(a, dt.datetime(2025, 3, 1, 8), "completed", 120.5, 48.2)]
    assert _rows(
        store,
        "SELECT product_id, quantity, unit_price, line_total FROM order_lines "
        f"WHERE order_id = {world['o1']}",
    ) == [(world["product"], 2.0, 60.25, 120.5)]
    assert _rows(store, "SELECT customer_id, kind, direction FROM interactions") == [(a, "note", "internal")]
    assert _rows(store, "SELECT customer_id, status, priority FROM tasks") == [(a, "open", "normal")]
    assert store.high_water("customers") is not None


def test_store_schema_holds_no_identifying_column(store: AnalyticsStore) -> None:
    columns = {
        (r[0], r[1])
        for r in store.con.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
        ).fetchall()
    }
    names = {c for _, c in columns}
    identifying: set[str] = set()
    for model in (Customer, ContactPoint, Interaction, Task, Order):
        identifying |= identifying_columns(table_of(model))
    assert identifying >= {"display_name", "birth_date", "value", "body", "subject", "title", "attributes"}
    assert names.isdisjoint(identifying)
    assert {c for t, c in columns if t == "customers"} == {
        "customer_id",
        "created_at",
        "organisation_id",
        "gender",
        "birth_year",
        "region",
        "city",
        "preferred_channel",
        "preferred_language",
        "acquisition_source",
        "lifecycle_stage",
        "owner_id",
        "team_id",
        "profiling_allowed",
    }


def test_no_name_contact_or_free_text_value_reaches_the_store(
    db: Session, store: AnalyticsStore, world: dict[str, int]
) -> None:
    store.sync(db)
    text: list[str] = []
    for table in STORE_TABLES:
        frame = store.con.execute(f"SELECT * FROM {table.name}").df()
        for col in frame.columns:
            text += [str(v) for v in frame[col] if isinstance(v, str)]
    blob = "\n".join(text)
    for secret in ("王小明", "李娜", "小明", "13800138000", "投诉", "快递", "回访", "110101198807090011"):
        assert secret not in blob
    assert "1988-07-09" not in blob


def test_a_hidden_column_fails_closed(db: Session, store: AnalyticsStore) -> None:
    leaky = StoreTable(
        "customers", CUSTOMER, {"customer_id": ("BIGINT", "id"), "name": ("VARCHAR", "display_name")}
    )
    recs = store_mod.Records(db, store_mod.ANALYTICS_PRINCIPAL, store_mod.CursorCodec("x"))
    with pytest.raises(Forbidden, match=r"customer\.display_name"):
        store._source_columns(recs, leaky)


def test_second_sync_moves_only_changed_rows(
    db: Session, factory: Factory, store: AnalyticsStore, world: dict[str, int]
) -> None:
    store.sync(db)
    again = store.sync(db)
    assert again.upserted == dict.fromkeys(again.upserted, 0)
    assert not any(again.full.values())

    _touch(db, Customer, world["b"], region="华北")
    o3 = factory.order(world["a"], total=Decimal("10.00"), status="shipped")
    factory.order_line(o3, world["product"], unit_price=Decimal("10.00"))
    db.execute(update(Order).where(Order.id == o3).values(updated_at=utcnow() + LATER))
    third = store.sync(db)
    assert third.upserted == {
        "customers": 1,
        "products": 0,
        "order_lines": 1,
        "orders": 1,
        "interactions": 0,
        "tasks": 0,
    }
    assert _rows(store, f"SELECT region FROM customers WHERE customer_id = {world['b']}") == [("华北",)]
    assert store.count("orders") == 3
    assert store.count("order_lines") == 3


def test_changed_order_replaces_its_lines(
    db: Session, factory: Factory, store: AnalyticsStore, world: dict[str, int]
) -> None:
    store.sync(db)
    from rapport.models import OrderLine

    db.execute(OrderLine.__table__.delete().where(OrderLine.order_id == world["o1"]))
    factory.order_line(world["o1"], world["product"], quantity=3, unit_price=Decimal("5.00"))
    _touch(db, Order, world["o1"], status="completed")
    store.sync(db)
    assert _rows(store, f"SELECT quantity, line_total FROM order_lines WHERE order_id = {world['o1']}") == [
        (3.0, 15.0)
    ]


def test_soft_deleted_customer_disappears_and_returns_on_restore(
    db: Session, store: AnalyticsStore, world: dict[str, int]
) -> None:
    store.sync(db)
    a = world["a"]
    _touch(db, Customer, a, deleted_at=utcnow())
    report = store.sync(db)
    assert report.removed["customers"] == 1
    assert report.removed["orders"] == 1
    assert report.removed["order_lines"] == 1
    assert report.removed["interactions"] == 1
    assert report.removed["tasks"] == 1
    for table, key in (
        ("customers", "customer_id"),
        ("orders", "customer_id"),
        ("interactions", "customer_id"),
        ("tasks", "customer_id"),
    ):
        assert _rows(store, f"SELECT count(*) FROM {table} WHERE {key} = {a}") == [(0,)]
    assert store.count("customers") == 1

    # Restored: the customer comes back with the orders that did not change meanwhile.
    db.execute(
        update(Customer).where(Customer.id == a).values(deleted_at=None, updated_at=utcnow() + 2 * LATER)
    )
    back = store.sync(db)
    assert back.upserted["customers"] == 1
    assert back.upserted["orders"] == 1
    assert back.upserted["order_lines"] == 1
    assert _rows(store, f"SELECT count(*) FROM orders WHERE customer_id = {a}") == [(1,)]
    assert _rows(store, f"SELECT count(*) FROM tasks WHERE customer_id = {a}") == [(1,)]


def test_profiling_allowed_follows_the_consent_function(
    db: Session, store: AnalyticsStore, world: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    store.sync(db)
    assert _rows(store, "SELECT count(*) FROM customers WHERE profiling_allowed") == [(2,)]

    def only_b(session: Session) -> Select[Any]:
        return select(Customer.id).where(Customer.id == world["b"])

    monkeypatch.setattr(store_mod, "profiling_allowed_ids", only_b)
    # Consent changes do not touch the customer row: every sync recomputes the flag for everyone.
    report = store.sync(db)
    assert report.upserted["customers"] == 0
    assert report.profiling_allowed == 1
    assert _rows(store, "SELECT customer_id, profiling_allowed FROM customers ORDER BY customer_id") == [
        (world["a"], False),
        (world["b"], True),
    ]


def test_forget_deletes_a_customer_everywhere(
    db: Session, store: AnalyticsStore, world: dict[str, int]
) -> None:
    store.sync(db)
    a = world["a"]
    store.con.execute("CREATE TABLE result_x_customers AS SELECT customer_id, 1 AS v FROM customers")
    store.con.execute(
        "CREATE TABLE score_history (customer_id BIGINT, kind VARCHAR, value DOUBLE, label VARCHAR, "
        "model_version VARCHAR, computed_at TIMESTAMP)"
    )
    store.con.execute(f"INSERT INTO score_history VALUES ({a}, 'rfm', 555, 'champions', 'v', now())")
    deleted = store.forget([a])
    # customer, order, line, interaction, task, result row, history row, mirrored profiling consent
    assert deleted == 8
    for table in ("customers", "orders", "interactions", "tasks", "result_x_customers", "score_history"):
        assert _rows(store, f"SELECT count(*) FROM {table} WHERE customer_id = {a}") == [(0,)]
    assert _rows(store, f"SELECT count(*) FROM order_lines WHERE order_id = {world['o1']}") == [(0,)]
    assert store.count("customers") == 1
    assert store.forget([]) == 0


def test_sync_is_audited_without_ids(db: Session, store: AnalyticsStore, world: dict[str, int]) -> None:
    store.sync(db)
    events = [e for e in db.info.get("audit", []) if e.resource == "analytics"]
    assert len(events) == 1
    assert events[0].action == "sync"
    assert events[0].actor_kind == "system"
    assert events[0].details["upserted"]["customers"] == 2


def test_store_file_persists_marks(db: Session, tmp_path: Any, world: dict[str, int]) -> None:
    path = tmp_path / "sub" / "analytics.duckdb"
    with AnalyticsStore.open(path) as st:
        st.sync(db)
        mark = st.high_water("orders")
    with AnalyticsStore.open(path) as st:
        assert st.high_water("orders") == mark
        assert st.count("customers") == 2
        assert st.sync(db).upserted["orders"] == 0


def test_forget_in_store_file(db: Session, tmp_path: Any, world: dict[str, int]) -> None:
    path = tmp_path / "analytics.duckdb"
    assert store_mod.forget_in_store(path, [world["a"]]) == 0
    assert not path.exists()  # erasure does not create a store
    with AnalyticsStore.open(path) as st:
        st.sync(db)
    # customer, order, line, mirrored profiling consent
    assert store_mod.forget_in_store(path, [world["b"]]) == 4
    with AnalyticsStore.open(path) as st:
        assert st.count("customers") == 1


def test_sync_mirrors_consent_and_scores_for_segment_rules(
    db: Session, store: AnalyticsStore, world: dict[str, int], factory: Factory
) -> None:
    a, b = world["a"], world["b"]
    factory.consent(a, "marketing_wechat")
    factory.consent(b, "marketing_wechat", granted=False)
    factory.conn.execute(
        insert(CustomerScore).values(
            customer_id=a,
            kind="churn_risk",
            value=0.75,
            label=None,
            details=None,
            model_version="t",
            computed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        )
    )
    store.sync(db)
    assert _rows(
        store, "SELECT customer_id, purpose, granted FROM consents ORDER BY purpose, customer_id"
    ) == [
        (a, "marketing_wechat", True),
        (a, "profiling", True),
        (b, "profiling", True),
    ]
    assert _rows(store, "SELECT customer_id, kind, value FROM scores") == [(a, "churn_risk", 0.75)]
    # Restriction reaches the mirror at the next sync, through the consent module's answer.
    factory.conn.execute(
        insert(ProcessingRestriction).values(customer_id=a, restricted=True, reason="r", changed_at=utcnow())
    )
    store.sync(db)
    assert _rows(store, "SELECT customer_id, purpose FROM consents ORDER BY customer_id") == [
        (b, "profiling")
    ]
    store.forget([a])
    assert _rows(store, "SELECT count(*) FROM scores") == [(0,)]
