from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import SYSTEM, Principal
from rapport.models import CustomerTag, CustomField
from rapport.models.base import utcnow
from rapport.privacy.common import records
from rapport.privacy.erasure import erase_customer
from rapport.privacy.portability import (
    FORMAT,
    export_customer,
    from_csv_zip,
    import_customer,
    to_csv_zip,
)
from tests.factories import Factory

WHEN = dt.datetime(2025, 6, 1, 8, 30, tzinfo=dt.UTC)


def _person(factory: Factory) -> int:
    now = utcnow()
    factory.conn.execute(
        insert(CustomField).values(
            entity="customer",
            key="nickname",
            label="Nickname",
            field_type="text",
            choices=[],
            required=False,
            created_at=now,
            updated_at=now,
            version=1,
        )
    )
    cid = factory.customer(
        display_name="王小明",
        family_name="王",
        given_name="小明",
        name_latin="Wang Xiaoming",
        gender="male",
        birth_date=dt.date(1988, 2, 29),
        city="上海",
        preferred_channel="wechat",
        lifecycle_stage="loyal",
        attributes={"nickname": "=小明"},  # a formula-looking value survives the CSV round trip
    )
    factory.conn.execute(insert(CustomerTag).values([{"customer_id": cid, "tag": "vip"}]))
    factory.contact(cid, "phone", "+8613800138000", is_primary=True, label="手机")
    factory.contact(cid, "email", "xm@example.com", value_normalized="xm@example.com")
    factory.interaction(
        cid,
        kind="call",
        direction="inbound",
        channel="phone",
        occurred_at=WHEN,
        subject="咨询",
        body="问发票, 还有\n第二行",
    )
    factory.task(
        cid,
        title="回访",
        description="周五",
        status="done",
        due_at=WHEN,
        completed_at=WHEN + dt.timedelta(hours=1),
    )
    product = factory.product()
    order = factory.order(cid, Decimal("300.00"), order_number="SO-RT-1", ordered_at=WHEN)
    factory.order_line(order, product, quantity=3)
    return cid


def _comparable(export: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in export.items() if k not in ("exported_at", "orders")}
    out["customer"] = {k: v for k, v in export["customer"].items() if k not in ("source_id", "created_at")}
    return out


def test_export_holds_the_person_in_the_documented_format(factory: Factory, db: Session) -> None:
    cid = _person(factory)
    data = export_customer(db, cid, actor=SYSTEM)
    assert data["format"] == FORMAT
    assert data["customer"]["display_name"] == "王小明"
    assert data["customer"]["birth_date"] == "1988-02-29"
    assert data["tags"] == ["vip"]
    assert [(c["kind"], c["value"], c["is_primary"]) for c in data["contact_points"]] == [
        ("phone", "+8613800138000", True),
        ("email", "xm@example.com", False),
    ]
    assert data["interactions"] == [
        {
            "kind": "call",
            "direction": "inbound",
            "channel": "phone",
            "occurred_at": "2025-06-01T08:30:00Z",
            "subject": "咨询",
            "body": "问发票, 还有\n第二行",
        }
    ]
    assert data["tasks"][0]["status"] == "done"
    (order,) = data["orders"]
    assert (order["order_number"], order["total_amount"]) == ("SO-RT-1", "300.00")
    assert [(ln["quantity"], ln["line_total"]) for ln in order["lines"]] == [(3, "300.00")]
    events = [e for e in db.info["audit"] if e.action == "export"]
    assert [e.resource for e in events] == ["customer", "contact_point", "interaction", "task", "order"]


def test_json_export_round_trips_through_erasure_and_import(factory: Factory, db: Session) -> None:
    cid = _person(factory)
    first = export_customer(db, cid, actor=SYSTEM)
    erase_customer(db, cid, actor=SYSTEM, reason="dsr:1")
    new_id = import_customer(records(db, SYSTEM), first)
    assert new_id != cid
    again = export_customer(db, new_id, actor=SYSTEM)
    assert _comparable(again) == _comparable(first)
    assert again["orders"] == []  # orders are the seller's records: exported, not imported


def test_csv_export_round_trips_too(factory: Factory, db: Session) -> None:
    cid = _person(factory)
    first = export_customer(db, cid, actor=SYSTEM)
    archive = to_csv_zip(first)
    parsed = from_csv_zip(archive)
    assert parsed["customer"]["attributes"] == {"nickname": "=小明"}
    assert parsed["orders"][0]["lines"][0]["quantity"] == "3"
    erase_customer(db, cid, actor=SYSTEM, reason="dsr:1")
    new_id = import_customer(records(db, SYSTEM), parsed)
    assert _comparable(export_customer(db, new_id, actor=SYSTEM)) == _comparable(first)


def test_export_is_masked_like_every_other_read(factory: Factory, db: Session) -> None:
    team = factory.team()
    cid = _person(factory)
    analyst = factory.user("data_analyst", team)
    data = export_customer(
        db, cid, actor=Principal(user_id=analyst, username="a", role=Role.data_analyst, team_id=team)
    )
    assert data["customer"]["display_name"] is None
    assert data["customer"]["city"] == "上海"
    assert {c["value"] for c in data["contact_points"]} == {None}
    assert data["interactions"][0]["body"] is None


def test_import_refuses_malformed_exports_with_422(factory: Factory, db: Session) -> None:
    import pytest

    from rapport.errors import InvalidInput

    recs = records(db, SYSTEM)
    for bad, message in (
        ({}, "format: expected"),
        ({"format": FORMAT}, "does not validate: 'customer'"),
        ({"format": FORMAT, "customer": {"display_name": "甲"}, "contact_points": [{"kind": "fax"}]}, "kind"),
        ({"format": FORMAT, "customer": {"display_name": "甲", "gender": "robot"}}, "gender"),
        (
            {
                "format": FORMAT,
                "customer": {"display_name": "甲"},
                "tasks": [{"title": "t", "status": "zzz"}],
            },
            "task status must be one of",
        ),
    ):
        with pytest.raises(InvalidInput, match=message):
            import_customer(recs, bad)


def test_an_export_downloaded_from_a_case_imports_through_the_api(
    client: TestClient, factory: Factory, db: Session
) -> None:
    cid = _person(factory)
    first = export_customer(db, cid, actor=SYSTEM)
    erase_customer(db, cid, actor=SYSTEM, reason="dsr:1")
    team = factory.team()
    h = factory.auth(factory.user("crm_specialist", team))
    r = client.post("/api/v1/privacy/imports", json=first, headers={**h, "Idempotency-Key": "imp-1"})
    assert r.status_code == 201, r.text
    new = r.json()
    assert (new["display_name"], new["tags"], new["team_id"]) == ("王小明", ["vip"], team)
    assert _comparable(export_customer(db, new["id"], actor=SYSTEM)) == _comparable(first)
    bad = client.post("/api/v1/privacy/imports", json={**first, "owner_id": 1}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "owner_id"
    rep = factory.auth(factory.user("data_analyst", team))
    assert client.post("/api/v1/privacy/imports", json=first, headers=rep).status_code == 403
