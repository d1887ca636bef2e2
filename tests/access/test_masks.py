"""Partial masks per role, applied in the data-access layer; the analysts' pseudonymised export."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from rapport.access import masks
from rapport.access.masks import Mask
from rapport.access.policy import Role, grant_for, pseudonym
from rapport.models import AuditEvent
from tests.factories import Factory


@pytest.mark.parametrize(
    ("mask", "value", "shown"),
    [
        (masks.mask_phone, "13812345678", "138****5678"),
        (masks.mask_phone, "+8613812345678", "138****5678"),
        (masks.mask_phone, "138 1234 5678", "138****5678"),
        (masks.mask_phone, "+442071838750", "+44****8750"),
        (masks.mask_email, "zhang.san@example.com", "z***@example.com"),
        (masks.mask_email, "a@b.cn", "a***@b.cn"),
        (masks.mask_national_id, "110101199003071234", "1101**********1234"),
        (masks.mask_national_id, "11010119900307123X", "1101**********123X"),
        (masks.mask_wechat, "wxid_abc12345", "wx*********45"),
        (masks.mask_address, "北京市朝阳区建国路88号", "北京市朝阳区****"),
        (masks.mask_phone, "123", "**3"),
    ],
)
def test_mask_functions(mask: object, value: str, shown: str) -> None:
    assert mask(value) == shown  # type: ignore[operator]


def test_policy_declares_who_gets_masks() -> None:
    contact = {role: grant_for(role, "contact_point") for role in Role}
    assert contact[Role.service_rep].masked == {("value", Mask.contact), ("value_normalized", Mask.contact)}
    for role in (Role.admin, Role.team_lead, Role.crm_specialist, Role.sales_rep):
        assert contact[role].masked == frozenset() and "value" not in contact[role].hidden
    assert "value" in contact[Role.data_analyst].hidden  # hidden, not merely masked


@pytest.fixture
def people(factory: Factory) -> dict[str, int]:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    customer = factory.customer(owner_id=rep, team_id=team, display_name="王小明")
    return {
        "team": team,
        "rep": rep,
        "customer": customer,
        "phone": factory.contact(customer, kind="phone", value="+8613812345678"),
        "email": factory.contact(customer, kind="email", value="zhang.san@example.com"),
        "wechat": factory.contact(customer, kind="wechat", value="wxid_abc12345"),
    }


def _values(items: list[dict[str, object]]) -> dict[object, tuple[object, object]]:
    return {i["kind"]: (i["value"], i["value_normalized"]) for i in items}


def test_service_rep_sees_masked_contacts_everywhere(
    client: TestClient, factory: Factory, people: dict[str, int]
) -> None:
    h = factory.auth(factory.user("service_rep", factory.team()))
    cid = people["customer"]
    expected = {
        "phone": ("138****5678", "138****5678"),
        "email": ("z***@example.com", "z***@example.com"),
        "wechat": ("wx*********45", "wx*********45"),
    }
    listing = client.get("/api/v1/contact-points?limit=200", headers=h)
    assert listing.status_code == 200, listing.text
    assert _values([i for i in listing.json()["items"] if i["customer_id"] == cid]) == expected
    one = client.get(f"/api/v1/contact-points/{people['phone']}", headers=h).json()
    assert (one["value"], one["value_normalized"]) == expected["phone"]
    view = client.get(f"/api/v1/customers/{cid}/360", headers=h).json()
    assert _values(view["contact_points"]) == expected
    # A caller can still be found by the full number they give.
    found = client.get("/api/v1/customers", params={"q": "13812345678"}, headers=h).json()["items"]
    assert [c["id"] for c in found] == [cid]


def test_sales_rep_sees_full_values_of_own_team(
    client: TestClient, factory: Factory, people: dict[str, int]
) -> None:
    h = factory.auth(people["rep"])
    view = client.get(f"/api/v1/customers/{people['customer']}/360", headers=h).json()
    assert _values(view["contact_points"])["phone"] == ("+8613812345678", "+8613812345678")
    assert _values(view["contact_points"])["email"][0] == "zhang.san@example.com"


@pytest.fixture
def analyst_world(factory: Factory) -> dict[str, int]:
    team = factory.team()
    owner = factory.user("sales_rep", team)
    a = factory.customer(
        owner_id=owner,
        team_id=team,
        display_name="王小明",
        birth_date=dt.date(1987, 5, 4),
        gender="male",
        region="上海",
        city="上海市",
        occupation="外科医生",
    )
    b = factory.customer(owner_id=owner, team_id=team, display_name="李雷", birth_date=dt.date(1990, 1, 1))
    factory.contact(a, kind="phone", value="+8613812345678")
    return {"a": a, "b": b}


def _csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8").lstrip("\ufeff"))))


def test_pseudonymised_export_has_no_direct_identifiers(
    app: FastAPI, client: TestClient, factory: Factory, analyst_world: dict[str, int], connection: Connection
) -> None:
    h = factory.auth(factory.user("data_analyst", factory.team()))
    r = client.get("/api/v1/customers/export", params={"pseudonymised": "true"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert 'filename="customers-pseudonymised.csv"' in r.headers["content-disposition"]
    rows = {row["pseudonym"]: row for row in _csv(r.content)}
    key: bytes = app.state.pseudonym_key
    mac = hmac.new(key, f"customer:{analyst_world['a']}".encode(), hashlib.sha256).hexdigest()
    pa = "p_" + mac[:20]
    assert pa == pseudonym(key, "customer", analyst_world["a"])
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    assert rows[pa] == {
        "pseudonym": pa,
        "gender": "male",
        "birth_year_band": "1985-1989",
        "region": "上海",
        "preferred_language": "",
        "preferred_channel": "",
        "acquisition_source": "",
        "lifecycle_stage": "customer",
        "created_month": month,
    }
    assert rows[pseudonym(key, "customer", analyst_world["b"])]["birth_year_band"] == "1990-1994"
    text = r.content.decode("utf-8")
    for secret in ("王小明", "上海市", "外科医生", "1987-05-04", "13812345678", f",{analyst_world['a']},"):
        assert secret not in text
    # Stable: the same key gives the same pseudonyms next time.
    again = client.get("/api/v1/customers/export", params={"pseudonymised": "true"}, headers=h)
    assert again.content == r.content
    event = (
        connection.execute(select(AuditEvent.details).where(AuditEvent.action == "export_pseudonymised"))
        .scalars()
        .all()
    )
    assert len(event) == 2 and analyst_world["a"] in event[0]["ids"]


def test_pseudonyms_depend_on_the_key() -> None:
    assert pseudonym(b"k1", "customer", 7) != pseudonym(b"k2", "customer", 7)
    assert pseudonym(b"k1", "customer", 7) != pseudonym(b"k1", "customer", 8)
    assert len(pseudonym(b"k1", "customer", 7)) == 22


def test_pseudonymised_export_needs_the_export_permission(
    client: TestClient, factory: Factory, analyst_world: dict[str, int]
) -> None:
    for role in ("sales_rep", "service_rep"):
        h = factory.auth(factory.user(role, factory.team()))
        r = client.get("/api/v1/customers/export", params={"pseudonymised": "true"}, headers=h)
        assert r.status_code == 403, role


def test_pseudonymised_export_pages_by_cursor(
    client: TestClient, factory: Factory, analyst_world: dict[str, int]
) -> None:
    h = factory.auth(factory.user("data_analyst", factory.team()))
    first = client.get("/api/v1/customers/export", params={"pseudonymised": "true", "limit": 1}, headers=h)
    cursor = first.headers["x-next-cursor"]
    second = client.get(
        "/api/v1/customers/export", params={"pseudonymised": "true", "limit": 1, "cursor": cursor}, headers=h
    )
    assert second.status_code == 200
    a, b = _csv(first.content), _csv(second.content)
    assert len(a) == len(b) == 1 and a[0]["pseudonym"] != b[0]["pseudonym"]
