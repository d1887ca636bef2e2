"""Import jobs end to end on the test database: files, modes, idempotency, rejections, revert, cancel."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.db import Database
from rapport.errors import Conflict, Forbidden
from rapport.ingest import jobs
from rapport.models import (
    ContactPoint,
    Customer,
    CustomerSearchTerm,
    CustomerTag,
    Order,
    OrderLine,
    Organisation,
)
from rapport.models.base import table_of
from rapport.security.crypto import blind_index
from rapport.security.keyring import open_rows
from tests.factories import Factory
from tests.ingest.helpers import queue_upsert

HEADER = "客户编号,姓名,手机,邮箱,性别,生日,地址,标签,公司\n"


def _principal(factory: Factory, role: str = "crm_specialist") -> Principal:
    team = factory.team()
    uid = factory.user(role, team_id=team)
    return Principal(user_id=uid, username=f"u{uid}", role=Role(role), team_id=team)


def _run(database: Database, principal: Principal, path: Path, **kw: Any) -> dict[str, Any]:
    kw.setdefault("kind", "customers")
    kw.setdefault("mode", "upsert")
    kw.setdefault("match_keys", ["external_id", "email", "phone"])
    kw.setdefault("mapping", None)
    with database.unit(write=True) as session:
        job = jobs.create_job(session, principal, path, **kw)
    return jobs.run_job(database, job["id"])


def _count(conn: Connection, model: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table_of(model))).scalar_one())


def _customer(conn: Connection, external_id: str) -> dict[str, Any]:
    ext = table_of(__import__("rapport.models", fromlist=["CustomerExternalId"]).CustomerExternalId)
    c = table_of(Customer)
    row = (
        conn.execute(select(c).join(ext, ext.c.customer_id == c.c.id).where(ext.c.external_id == external_id))
        .mappings()
        .one()
    )
    return dict(row)


def _write(tmp_path: Path, name: str, rows: list[str], header: str = HEADER, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes((header + "".join(r + "\n" for r in rows)).encode(encoding))
    return path


ROWS = [
    "C001,王小明,138 0013 8000,Wang.XM@Example.com,男,1990-05-03,上海市浦东新区世纪大道100号,VIP;新客,星辰贸易有限公司",  # noqa: E501
    "C002,李雷,+86 139-0000-1111,,先生,1985/1/2,广东省广州市天河区体育西路1号,,",
    "C003,韩梅梅,13700001234,meimei@example.com,女士,1992年7月8日,,老客户,星辰贸易有限公司",
]


def test_gbk_file_without_bom_creates_customers_with_sealed_contacts(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    path = _write(tmp_path, "客户.csv", ROWS, encoding="gbk")
    p = _principal(factory)

    result = _run(database, p, path)

    assert result == {
        "job_id": result["job_id"],
        "status": "done",
        "rows": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "checkpoint_line": 4,
    }
    wang = _customer(connection, "C001")
    assert (wang["display_name"], wang["gender"], wang["birth_date"]) == (
        "王小明",
        "male",
        dt.date(1990, 5, 3),
    )
    assert (wang["region"], wang["city"], wang["owner_id"], wang["team_id"]) == (
        "上海市",
        "上海市",
        p.user_id,
        p.team_id,
    )
    assert wang["version"] == 1
    cp = table_of(ContactPoint)
    rows = [
        dict(r)
        for r in connection.execute(
            select(cp).where(cp.c.customer_id == wang["id"]).order_by(cp.c.id)
        ).mappings()
    ]
    assert [r["kind"] for r in rows] == ["phone", "email", "address"]
    assert rows[0]["value"] != b"+8613800138000"  # sealed at rest
    open_rows(connection, cp, rows)
    assert [r["value_normalized"] for r in rows] == [
        "+8613800138000",
        "wang.xm@example.com",
        "上海市浦东新区世纪大道100号",
    ]
    assert rows[1]["value_bidx"] == blind_index("email", "wang.xm@example.com")
    assert [r["is_primary"] for r in rows] == [True, True, True]
    tags = table_of(CustomerTag)
    assert sorted(
        connection.execute(select(tags.c.tag).where(tags.c.customer_id == wang["id"])).scalars()
    ) == ["VIP", "新客"]
    terms = table_of(CustomerSearchTerm)
    assert {"王小明", "小明", "wangxiaoming", "wxm"} <= set(
        connection.execute(select(terms.c.term).where(terms.c.customer_id == wang["id"])).scalars()
    )
    org = table_of(Organisation)
    assert (
        connection.execute(
            select(func.count()).select_from(org).where(org.c.name == "星辰贸易有限公司")
        ).scalar_one()
        == 1
    )
    assert _customer(connection, "C003")["organisation_id"] == wang["organisation_id"] is not None


def test_five_percent_bad_rows_are_reported_exactly_and_good_rows_still_import(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    rows = [f"E{i:03d},客户{i},1380000{i:04d},c{i}@example.com,女,1990-01-01,,," for i in range(100)]
    rows[9] = "E009,客户9,12345,c9@example.com,女,1990-01-01,,,"
    rows[29] = "E029,客户29,13800000029,c29@example,女,1990-01-01,,,"
    rows[49] = "E049,客户49,13800000049,c49@example.com,女,1990-02-30,,,"
    rows[69] = "E069,客户69,13800000069,c69@example.com,外星人,1990-01-01,,,"
    rows[89] = "E089,,13800000089,c89@example.com,女,1990-01-01,,,"
    path = _write(tmp_path, "bad.csv", rows)

    result = _run(database, _principal(factory), path, batch_size=30)

    assert (result["created"], result["rejected"], result["rows"]) == (95, 5, 100)
    with database.unit(write=False) as session:
        report = jobs.rejection_list(session, result["job_id"])
    assert report == [
        {"line": 11, "column": "手机", "field": "phone", "reason": "not a valid phone number for its region"},
        {
            "line": 31,
            "column": "邮箱",
            "field": "email",
            "reason": "not a valid email address: The part after the @-sign is not valid. It should have a period.",  # noqa: E501
        },
        {
            "line": 51,
            "column": "生日",
            "field": "birth_date",
            "reason": "day 30 out of range for 1990-02 (which has 28 days)",
        },
        {
            "line": 71,
            "column": "性别",
            "field": "gender",
            "reason": "not a recognised gender (expected e.g. 女/男/F/M/未知)",
        },
        {"line": 91, "column": "姓名", "field": "display_name", "reason": "a name is required"},
    ]
    with database.unit(write=False) as session:
        csv_text = "".join(jobs.rejections_csv(session, _principal(factory, "admin"), result["job_id"]))
    assert csv_text.splitlines()[:2] == [
        "\ufeffline,column,field,reason",
        "11,手机,phone,not a valid phone number for its region",
    ]


def test_reimport_changes_nothing(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    path = _write(tmp_path, "c.csv", ROWS)
    p = _principal(factory)
    _run(database, p, path)
    before = {
        m.__name__: _count(connection, m)
        for m in (Customer, ContactPoint, CustomerTag, CustomerSearchTerm, Organisation)
    }
    versions = sorted(connection.execute(select(table_of(Customer).c.version)).scalars())

    again = _run(database, p, path)

    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (0, 0, 3, 0)
    assert {
        m.__name__: _count(connection, m)
        for m in (Customer, ContactPoint, CustomerTag, CustomerSearchTerm, Organisation)
    } == before
    assert sorted(connection.execute(select(table_of(Customer).c.version)).scalars()) == versions


def test_update_mode_updates_matches_and_rejects_unknown_rows(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "a.csv", ROWS))
    changed = [
        "C001,王小明,13800138000,,男,1990-05-03,北京市朝阳区建国路1号,VIP;常客,",  # new address, new tag
        "C009,新客户,13911112222,,,,,,",
    ]
    result = _run(database, p, _write(tmp_path, "b.csv", changed), mode="update")

    assert (result["created"], result["updated"], result["rejected"]) == (0, 1, 1)
    with database.unit(write=False) as session:
        assert jobs.rejection_list(session, result["job_id"]) == [
            {
                "line": 3,
                "column": "客户编号",
                "field": None,
                "reason": "no customer matches by external_id, email, phone (mode update)",
            }
        ]
    wang = _customer(connection, "C001")
    assert (wang["region"], wang["city"], wang["version"]) == ("上海市", "上海市", 2)  # explicit columns only
    tags = table_of(CustomerTag)
    assert sorted(
        connection.execute(select(tags.c.tag).where(tags.c.customer_id == wang["id"])).scalars()
    ) == ["VIP", "常客", "新客"]
    cp = table_of(ContactPoint)
    kinds = list(
        connection.execute(
            select(cp.c.kind).where(cp.c.customer_id == wang["id"]).order_by(cp.c.id)
        ).scalars()
    )
    assert kinds == ["phone", "email", "address", "address"]


def test_upsert_matches_by_phone_through_the_blind_index_and_creates_the_rest(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    cid = factory.customer(owner_id=p.user_id, team_id=p.team_id, display_name="老王", city="杭州")
    factory.contact(cid, "phone", "+8613800138000", value_normalized="+8613800138000")
    header = "name,mobile,city\n"
    result = _run(
        database,
        p,
        _write(
            tmp_path,
            "u.csv",
            ["王小明,0086 138-0013-8000,苏州", "Ada Lovelace,+44 20 7946 0958,London"],
            header,
        ),
        match_keys=["phone"],
    )

    assert (result["created"], result["updated"], result["unchanged"]) == (1, 1, 0)
    c = table_of(Customer)
    row = connection.execute(select(c.c.display_name, c.c.city, c.c.version).where(c.c.id == cid)).one()
    assert tuple(row) == ("王小明", "苏州", 2)


def test_create_mode_never_updates(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "a.csv", ROWS))
    rows = [ROWS[0], ROWS[1].replace("李雷", "李雷雷")]
    result = _run(database, p, _write(tmp_path, "b.csv", rows), mode="create")
    assert (result["created"], result["updated"], result["unchanged"], result["rejected"]) == (0, 0, 1, 1)
    assert _customer(connection, "C002")["display_name"] == "李雷"


def test_bad_rows_never_damage_stored_records(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "a.csv", ROWS))
    before = _customer(connection, "C001")
    bad = ["C001,王大明,13800138000,,男,1990-13-45,,,", "C001,,,,,,,,", "C001,王小明,not a phone,,,,,,"]
    result = _run(database, p, _write(tmp_path, "b.csv", bad))
    assert (result["updated"], result["rejected"]) == (0, 3)
    assert _customer(connection, "C001") == before


def test_revert_restores_updated_values_and_removes_created_records(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "a.csv", ROWS[:1]))
    wang_before = _customer(connection, "C001")
    counts = {
        m.__name__: _count(connection, m)
        for m in (Customer, ContactPoint, CustomerTag, CustomerSearchTerm, Organisation)
    }
    rows = [
        "C001,王晓明,13800138000,,女,1991-01-01,,VIP;常客,新公司",
        "C050,周杰,13600001111,zj@example.com,男,,,,新公司",
    ]
    second = _run(database, p, _write(tmp_path, "b.csv", rows))
    assert (second["created"], second["updated"]) == (1, 1)

    with database.unit(write=True) as session:
        reverted = jobs.revert_job(session, p, second["job_id"])

    assert reverted["status"] == "reverted"
    wang = _customer(connection, "C001")
    assert {k: wang[k] for k in ("display_name", "gender", "birth_date", "organisation_id")} == {
        k: wang_before[k] for k in ("display_name", "gender", "birth_date", "organisation_id")
    }
    assert wang["version"] == 3  # imported (2), reverted (3)
    assert {
        m.__name__: _count(connection, m)
        for m in (Customer, ContactPoint, CustomerTag, CustomerSearchTerm, Organisation)
    } == counts
    terms = table_of(CustomerSearchTerm)
    assert "王小明" in set(
        connection.execute(select(terms.c.term).where(terms.c.customer_id == wang["id"])).scalars()
    )
    with database.unit(write=True) as session, pytest.raises(Conflict, match="already reverted"):
        jobs.revert_job(session, p, second["job_id"])


def test_revert_refused_when_a_record_changed_since_or_after_the_window(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    first = _run(database, p, _write(tmp_path, "a.csv", ROWS))
    c = table_of(Customer)
    wang = _customer(connection, "C001")
    connection.execute(c.update().where(c.c.id == wang["id"]).values(city="南京", version=c.c.version + 1))

    with database.unit(write=True) as session, pytest.raises(Conflict) as caught:
        jobs.revert_job(session, p, first["job_id"])
    assert caught.value.errors == [
        {
            "entity": "customer",
            "record_id": wang["id"],
            "reason": "changed since the import",
            "type": "changed",
        }
    ]
    assert _count(connection, Customer) == 3

    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    with database.unit(write=True) as session, pytest.raises(Conflict, match="more than 30 days ago"):
        jobs.revert_job(session, p, first["job_id"], now=late)


def test_cancel_stops_after_the_current_batch(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    rows = [f"K{i:03d},客户{i},1391111{i:04d},,,,,," for i in range(50)]
    path = _write(tmp_path, "k.csv", rows)
    job_id = queue_upsert(database, p, path, batch_size=10)
    first = jobs.run_job(database, job_id, max_batches=2)
    assert (first["status"], first["rows"], first["checkpoint_line"]) == ("running", 20, 21)
    with database.unit(write=True) as session:
        assert jobs.cancel_job(session, p, job_id)["cancel_requested"] is True

    final = jobs.run_job(database, job_id)

    assert (final["status"], final["created"], final["checkpoint_line"]) == ("cancelled", 20, 21)
    assert _count(connection, Customer) == 20
    with (
        database.unit(write=True) as session,
        pytest.raises(Conflict, match="only queued, running or interrupted"),
    ):
        jobs.cancel_job(session, p, job_id)


def test_roles_without_the_import_resource_are_refused(
    tmp_path: Path, database: Database, factory: Factory
) -> None:
    sales = _principal(factory, "sales_rep")
    with database.unit(write=True) as session, pytest.raises(Forbidden):
        jobs.create_job(
            session,
            sales,
            _write(tmp_path, "a.csv", ROWS),
            kind="customers",
            mode="upsert",
            match_keys=["email"],
            mapping=None,
        )


def test_orders_import_with_lines(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "c.csv", ROWS))
    factory.product(sku="TEA-1", list_price=Decimal("50.00"), unit_cost=Decimal("20.00"))
    factory.product(sku="CUP-2", list_price=Decimal("30.00"), unit_cost=None)
    header = "订单号,客户编号,下单时间,订单状态,商品编码,数量,单价\n"
    rows = [
        "SO-1,C001,2025-03-01 10:00,completed,TEA-1,2,",
        "SO-1,C001,2025-03-01 10:00,completed,CUP-2,1,25.50",
        "SO-2,C002,2025-03-02,paid,TEA-1,1,",
        "SO-3,C404,2025-03-02,paid,TEA-1,1,",
        "SO-4,C003,2025-03-02,paid,NOPE,1,",
    ]
    result = _run(database, p, _write(tmp_path, "o.csv", rows, header), kind="orders", batch_size=2)

    assert (result["created"], result["rejected"]) == (2, 2)
    o, ol = table_of(Order), table_of(OrderLine)
    so1 = connection.execute(select(o).where(o.c.order_number == "SO-1")).mappings().one()
    assert (so1["customer_id"], so1["total_amount"], so1["status"]) == (
        _customer(connection, "C001")["id"],
        Decimal("125.50"),
        "completed",
    )
    assert so1["ordered_at"] == dt.datetime(
        2025, 3, 1, 2, 0, tzinfo=dt.UTC
    )  # Asia/Shanghai when no zone is written
    assert so1["cost_amount"] is None  # one line has no known cost
    assert _count(connection, OrderLine) == 3
    assert (
        connection.execute(
            select(func.count()).select_from(ol).where(ol.c.order_id == so1["id"])
        ).scalar_one()
        == 2
    )
    with database.unit(write=False) as session:
        assert jobs.rejection_list(session, result["job_id"]) == [
            {
                "line": 5,
                "column": "客户编号",
                "field": "customer",
                "reason": "no customer matches this order's customer columns",
            },
            {"line": 6, "column": "商品编码", "field": "sku", "reason": "no product with this SKU"},
        ]
    again = _run(database, p, _write(tmp_path, "o.csv", rows, header), kind="orders")
    assert (again["created"], again["unchanged"]) == (0, 2)
    with database.unit(write=True) as session:
        jobs.revert_job(session, p, result["job_id"])
    assert _count(connection, Order) == 0


def test_preview_shows_the_outcome_of_the_first_rows(
    tmp_path: Path, database: Database, factory: Factory
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "a.csv", ROWS[:1]))
    path = _write(tmp_path, "b.csv", [ROWS[0].replace("1990-05-03", "1990-05-04"), ROWS[1], "X,,,,,,,,"])
    with database.unit(write=False) as session:
        out = jobs.preview(
            session, p, path, kind="customers", mode="upsert", match_keys=["external_id"], mapping=None
        )
    assert [(r["line"], r["outcome"], r["changes"]) for r in out["rows"]] == [
        (2, "update", ["birth_date"]),
        (3, "create", []),
        (4, "reject", []),
    ]
    assert out["rows"][1]["values"]["phones"] == ["+8613900001111"]
    assert out["rows"][2]["errors"] == [
        {"column": "姓名", "field": "display_name", "reason": "a name is required"}
    ]


def test_matcher_hook_turns_a_probable_duplicate_into_an_update(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    cid = factory.customer(owner_id=p.user_id, team_id=p.team_id, display_name="王小明")
    seen: list[list[dict[str, Any]]] = []

    class M:
        def __init__(self, index: int, customer_id: int, probability: float) -> None:
            self.index, self.customer_id, self.probability = index, customer_id, probability

    def matcher(session: Any, rows: list[dict[str, Any]]) -> list[M]:
        seen.append(rows)
        return [M(0, cid, 0.99), M(1, cid, 0.5)]

    path = _write(tmp_path, "m.csv", ["王小明,广州", "李雷,深圳"], "姓名,城市\n")
    with database.unit(write=True) as session:
        job = jobs.create_job(
            session, p, path, kind="customers", mode="upsert", match_keys=["email"], mapping=None
        )
    result = jobs.run_job(database, job["id"], matcher=matcher)
    assert (result["created"], result["updated"]) == (1, 1)
    assert [r["display_name"] for r in seen[0]] == ["王小明", "李雷"]
    assert (
        connection.execute(
            select(table_of(Customer).c.city).where(table_of(Customer).c.id == cid)
        ).scalar_one()
        == "广州"
    )


def test_organisations_and_interactions_import_and_revert(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "c.csv", ROWS))
    orgs = _write(
        tmp_path, "o.csv", ["星辰贸易有限公司,贸易,上海市", "月光科技,软件,北京市"], "公司名称,行业,城市\n"
    )
    first = _run(database, p, orgs, kind="organisations")
    assert (first["created"], first["updated"]) == (1, 1)  # the customer import created the first one
    o = table_of(Organisation)
    assert (
        connection.execute(select(o.c.industry).where(o.c.name == "星辰贸易有限公司")).scalar_one() == "贸易"
    )
    assert _run(database, p, orgs, kind="organisations")["unchanged"] == 2

    header = "客户编号,类型,时间,主题,内容\n"
    rows = [
        "C001,call,2025-01-02 09:30,回访,满意",
        "C404,visit,2025-01-03,上门,",
        "C002,teleport,2025-01-03,,",
    ]
    result = _run(database, p, _write(tmp_path, "i.csv", rows, header), kind="interactions")
    assert (result["created"], result["rejected"]) == (1, 2)
    with database.unit(write=False) as session:
        assert [(r["line"], r["field"]) for r in jobs.rejection_list(session, result["job_id"])] == [
            (3, "customer"),
            (4, "kind"),
        ]
    again = _run(database, p, _write(tmp_path, "i.csv", rows, header), kind="interactions")
    assert (again["created"], again["unchanged"]) == (0, 1)

    with database.unit(write=True) as session:
        jobs.revert_job(session, p, result["job_id"])
        jobs.revert_job(session, p, first["job_id"])
    assert connection.execute(select(o.c.industry).where(o.c.name == "星辰贸易有限公司")).scalar_one() is None
    assert (
        connection.execute(select(func.count()).select_from(o).where(o.c.name == "月光科技")).scalar_one()
        == 0
    )


def test_external_ids_stay_unique(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    _run(database, p, _write(tmp_path, "a.csv", ROWS[:1]))
    rows = ["C001,别人,13911112222,other@example.com,,,,,", "C777,甲,,,,,,,", "C777,乙,,,,,,,"]
    result = _run(database, p, _write(tmp_path, "b.csv", rows), match_keys=["email"])
    assert (result["created"], result["rejected"]) == (1, 2)
    with database.unit(write=False) as session:
        assert [(r["line"], r["reason"]) for r in jobs.rejection_list(session, result["job_id"])] == [
            (2, f"external_id already belongs to customer {_customer(connection, 'C001')['id']}"),
            (4, "same external_id as line 3"),
        ]


def test_a_duplicate_row_in_a_later_batch_is_refused_on_every_run(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    rows = ["A1,甲,13911110001,,,,,,", "A2,乙,13911110002,,,,,,", "A3,丙,13911110001,,,,,,"]
    path = _write(tmp_path, "d.csv", rows)
    first = _run(database, p, path, match_keys=["phone"], batch_size=2)
    again = _run(database, p, path, match_keys=["phone"], batch_size=2)
    assert (first["created"], first["rejected"]) == (2, 1)
    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (0, 0, 2, 1)
    with database.unit(write=False) as session:
        reasons = [r["reason"] for r in jobs.rejection_list(session, again["job_id"])]
    a1 = _customer(connection, "A1")["id"]
    assert reasons == [f"matches customer {a1}, which this import already wrote (duplicate row)"]
    assert _customer(connection, "A1")["version"] == 1
