"""The CSV export's fast path against a plain reference of the documented format, on tricky rows.

The export reads timestamps, JSON and dates as stored, decrypts contact values inline and builds
cells with a compiled function. The reference here does none of that: typed ORM-level values,
``Keyring.open_text`` per value, ``masks.apply``, and the rules of ``rapport.exports.cells``
(text starting with ``= + - @`` tab or CR gets an apostrophe; lists joined with ``;``; JSON with
sorted keys; timestamps ISO in UTC; numbers and dates as they are), written by ``csv.writer``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from rapport.access import masks
from rapport.access.policy import POLICY, Action, Role
from rapport.access.specs import CONTACT_POINT, CUSTOMER
from rapport.exports.cells import safe_text
from rapport.models import CustomerTag
from rapport.security.keyring import load_keyring
from tests.factories import Factory

URL = "/api/v1/customers/export"
KINDS = ("phone", "email", "wechat", "address")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | int | dt.date) and not isinstance(value, dt.datetime):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, list):
        return safe_text(";".join(value)) if value else ""
    if isinstance(value, dict):
        return safe_text(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    return safe_text(str(value))


def _reference(factory: Factory, columns: list[str], masked: bool) -> str:
    conn = factory.conn
    cust, cp = CUSTOMER.table, CONTACT_POINT.table
    ring = load_keyring(conn)
    customers = {r["id"]: dict(r) for r in conn.execute(select(cust).order_by(cust.c.id)).mappings()}
    for row in customers.values():
        row["tags"] = []
        for kind in KINDS:
            row[kind] = []
    for cid, tag in conn.execute(
        select(CustomerTag.customer_id, CustomerTag.tag).order_by("customer_id", "tag")
    ):
        customers[cid]["tags"].append(tag)
    stmt = select(cp).where(cp.c.kind.in_(KINDS)).order_by(cp.c.customer_id, cp.c.is_primary.desc(), cp.c.id)
    for c in conn.execute(stmt).mappings():
        value = ring.open_text("contact_point", "value", c["id"], c["value"])
        if masked:
            value = masks.apply(masks.Mask.contact, value, {"kind": c["kind"]})
        if c["kind"] == "address":
            region, city = c["region"] or "", c["city"] or ""
            value = region + (city if city != region else "") + (value or "")
        customers[c["customer_id"]][c["kind"]].append(value)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in customers.values():
        writer.writerow([_cell(row[c]) for c in columns])
    return out.getvalue()


@pytest.fixture
def tricky(factory: Factory) -> int:
    team = factory.team()
    stamp = dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.UTC)
    whole = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    a = factory.customer(
        team_id=team,
        display_name='张三, "老张"\n第二行',
        family_name="+张",
        given_name="@三",
        occupation="\t制表",
        region="北京市",
        city="北京市",
        birth_date=dt.date(1999, 12, 31),
        attributes={"备注": '引号"和,逗号', "n": -3, "list": [1, "二"], "nested": {"b": 1, "a": None}},
        created_at=stamp,
        updated_at=whole,
    )
    factory.contact(a, "phone", "+8613812345678", is_primary=True)
    factory.contact(a, "phone", "13900001111")
    factory.contact(a, "email", "=cmd@example.com", is_primary=True)
    factory.contact(a, "wechat", "wxid_测试123")
    factory.contact(a, "address", '朝阳区建国路1号, 2"楼', region="北京市", city="北京市")
    b = factory.customer(
        team_id=team, display_name="-1+2", name_latin="\rCR", created_at=whole, updated_at=stamp
    )
    factory.contact(b, "address", "=1+1", region="广东省", city="深圳市")
    factory.customer(team_id=team, display_name="plain", attributes={}, created_at=whole, updated_at=whole)
    factory.conn.execute(
        insert(CustomerTag),
        [
            {"customer_id": a, "tag": "=SUM(A1)"},
            {"customer_id": a, "tag": "新客户"},
            {"customer_id": b, "tag": "x"},
        ],
    )
    return team


def test_csv_matches_the_reference_for_a_team_lead(client: TestClient, factory: Factory, tricky: int) -> None:
    lead = factory.user("team_lead", tricky)
    r = client.get(URL, params={"bom": "false"}, headers=factory.auth(lead))
    assert r.status_code == 200, r.text
    columns = r.text.split("\r\n", 1)[0].split(",")
    assert "phone" in columns and "created_at" in columns and "attributes" in columns
    assert r.text == _reference(factory, columns, masked=False)


def test_csv_matches_the_reference_with_masks_and_a_bom(
    client: TestClient, factory: Factory, tricky: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    grants = POLICY[Role.service_rep]
    for resource in ("customer", "contact_point"):
        monkeypatch.setitem(
            grants, resource, replace(grants[resource], actions=grants[resource].actions | {Action.export})
        )
    rep = factory.user("service_rep", tricky)
    r = client.get(URL, headers=factory.auth(rep))
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"\xef\xbb\xbf")
    text = r.content.decode("utf-8-sig")
    columns = text.split("\r\n", 1)[0].split(",")
    assert "138****5678" in text
    assert text == _reference(factory, columns, masked=True)


def test_csv_sorted_by_a_timestamp_pages_with_its_cursor(
    client: TestClient, factory: Factory, tricky: int
) -> None:
    # The sort column stays typed (the cursor encodes it); the other timestamps come as stored.
    h = factory.auth(factory.user("team_lead", tricky))
    whole = client.get(URL, params={"bom": "false", "sort": "created_at"}, headers=h).text
    head, *rows = whole.split("\r\n")
    reference = _reference(factory, head.split(","), masked=False).split("\r\n")[1:]
    assert sorted(rows) == sorted(reference)
    pages, cursor = [], None
    for _ in range(10):
        params = {
            "bom": "false",
            "sort": "created_at",
            "limit": "1",
            **({"cursor": cursor} if cursor else {}),
        }
        r = client.get(URL, params=params, headers=h)
        assert r.status_code == 200, r.text
        pages.append(r.text.split("\r\n")[1])
        cursor = r.headers.get("x-next-cursor")
        if not cursor:
            break
    assert pages == [row for row in rows if row]
