from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from rapport.access.policy import POLICY, Action, Role
from rapport.exports import service as export_service
from rapport.ingest import normalise
from rapport.ingest.vcard import read_vcards
from rapport.models import AuditEvent, CustomerTag, ProcessingRestriction
from rapport.models.base import utcnow
from tests.factories import Factory

URL = "/api/v1/customers/export"
T = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
STAMP = {"created_at": T, "updated_at": T}
HEADER = (
    "id,organisation_id,display_name,family_name,given_name,name_latin,gender,birth_date,occupation,region,"
    "city,preferred_language,preferred_channel,acquisition_source,lifecycle_stage,owner_id,team_id,attributes,"
    "erased_at,created_at,updated_at,version,tags,phone,email,wechat,address"
)


@dataclass
class World:
    east: int
    north: int
    lead: int
    org: int
    a: int  # full record with contacts
    b: int  # formula-looking name
    c: int  # other team


@pytest.fixture
def world(factory: Factory) -> World:
    east, north = factory.team(), factory.team()
    lead = factory.user("team_lead", east)
    org = factory.organisation(team_id=east, name="示例公司")
    a = factory.customer(
        team_id=east,
        owner_id=lead,
        organisation_id=org,
        display_name="王小明",
        family_name="王",
        given_name="小明",
        name_latin="Xiaoming Wang",
        gender="male",
        birth_date=dt.date(1990, 3, 7),
        occupation="工程师",
        region="上海市",
        city="上海市",
        attributes={"vip": True},
        **STAMP,
    )
    factory.contact(a, "phone", "+8613812345678", is_primary=True)
    factory.contact(a, "email", "xm@example.com", is_primary=True)
    factory.contact(
        a, "address", "浦东新区张江路1号", region="上海市", city="上海市", postal_code="200120", country="CN"
    )
    factory.conn.execute(
        insert(CustomerTag), [{"customer_id": a, "tag": "vip"}, {"customer_id": a, "tag": "新客户"}]
    )
    b = factory.customer(team_id=east, display_name='=HYPERLINK("http://x")', occupation="-1+2", **STAMP)
    c = factory.customer(team_id=north, display_name="李雷", **STAMP)
    return World(east, north, lead, org, a, b, c)


def _row_a(w: World) -> str:
    return (
        f"{w.a},{w.org},王小明,王,小明,Xiaoming Wang,male,1990-03-07,工程师,上海市,上海市,,,,customer,"
        f"{w.lead},"
        f'{w.east},"{{""vip"":true}}",,2026-01-02T03:04:05+00:00,2026-01-02T03:04:05+00:00,1,vip;新客户,'
        "'+8613812345678,xm@example.com,,上海市浦东新区张江路1号"
    )


def test_csv_exact_scoped_and_formula_safe(client: TestClient, factory: Factory, world: World) -> None:
    r = client.get(URL, params={"bom": "false"}, headers=factory.auth(world.lead))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert "content-length" not in r.headers  # streamed
    row_b = (
        f"{world.b},,'=HYPERLINK(\"http://x\"),,,,,,'-1+2,,,,,,customer,,{world.east},{{}},,"
        "2026-01-02T03:04:05+00:00,2026-01-02T03:04:05+00:00,1,,,,,"
    )
    row_b = row_b.replace('\'=HYPERLINK("http://x")', '"\'=HYPERLINK(""http://x"")"')
    assert r.text == f"{HEADER}\r\n{_row_a(world)}\r\n{row_b}\r\n"


def test_bom_default_for_csv_and_on_request(client: TestClient, factory: Factory, world: World) -> None:
    h = factory.auth(world.lead)
    assert client.get(URL, headers=h).content.startswith(b"\xef\xbb\xbfid,")
    assert client.get(URL, params={"bom": "false"}, headers=h).content.startswith(b"id,")
    assert client.get(URL, params={"format": "jsonl"}, headers=h).content.startswith(b'{"id"')
    assert client.get(URL, params={"format": "jsonl", "bom": "true"}, headers=h).content.startswith(
        b"\xef\xbb\xbf{"
    )


def test_jsonl_exact(client: TestClient, factory: Factory, world: World) -> None:
    r = client.get(URL, params={"format": "jsonl", "lifecycle_stage": "customer", "tag": "vip"},
                   headers=factory.auth(world.lead))  # fmt: skip
    assert r.headers["content-type"] == "application/x-ndjson"
    lines = r.content.decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "id": world.a, "organisation_id": world.org, "display_name": "王小明", "family_name": "王",
            "given_name": "小明", "name_latin": "Xiaoming Wang", "gender": "male", "birth_date": "1990-03-07",
            "occupation": "工程师", "region": "上海市", "city": "上海市", "preferred_language": None,
            "preferred_channel": None, "acquisition_source": None, "lifecycle_stage": "customer",
            "owner_id": world.lead, "team_id": world.east, "attributes": {"vip": True}, "erased_at": None,
            "created_at": "2026-01-02T03:04:05+00:00", "updated_at": "2026-01-02T03:04:05+00:00",
            "version": 1, "tags": ["vip", "新客户"], "phone": ["+8613812345678"], "email": ["xm@example.com"],
            "wechat": [], "address": ["上海市浦东新区张江路1号"],
        }
    ]  # fmt: skip


def test_vcard_exact(client: TestClient, factory: Factory, world: World) -> None:
    r = client.get(URL, params={"format": "vcard", "tag": "vip"}, headers=factory.auth(world.lead))
    assert r.headers["content-type"] == "text/vcard; charset=utf-8"
    assert r.headers["content-disposition"].endswith(".vcf")
    assert r.content.decode() == (
        "BEGIN:VCARD\r\nVERSION:4.0\r\n"
        f"UID:urn:rapport:customer:{world.a}\r\n"
        "FN:王小明\r\nN:王;小明;;;\r\nGENDER:M\r\nBDAY:19900307\r\n"
        "TEL;VALUE=uri;TYPE=cell;PREF=1:tel:+8613812345678\r\n"
        "EMAIL;PREF=1:xm@example.com\r\n"
        "ADR:;;浦东新区张江路1号;上海市;上海市;200120;CN\r\n"
        "ORG:示例公司\r\nTITLE:工程师\r\nCATEGORIES:vip,新客户\r\nEND:VCARD\r\n"
    )


def test_xlsx_cells_typed_and_formula_safe(
    client: TestClient, factory: Factory, world: World, tmp_path: Path
) -> None:
    r = client.get(URL, params={"format": "xlsx"}, headers=factory.auth(world.lead))
    assert r.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    path = tmp_path / "x.xlsx"
    path.write_bytes(r.content)
    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert ",".join(rows[0]) == HEADER
    assert [row[0] for row in rows[1:]] == [world.a, world.b]
    assert rows[1][2] == "王小明"
    assert rows[1][7] == dt.datetime(1990, 3, 7)
    assert rows[1][22:] == [
        "vip;新客户",
        "'+8613812345678",
        "xm@example.com",
        None,
        "上海市浦东新区张江路1号",
    ]
    formula = sheet.cell(row=3, column=3)
    assert (formula.value, formula.data_type) == ('\'=HYPERLINK("http://x")', "s")
    assert sheet.cell(row=3, column=9).value == "'-1+2"


def test_xlsx_escapes_markup_drops_control_characters_and_splits_full_sheets(
    client: TestClient, factory: Factory, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rapport.exports import writers

    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", 3)  # header and two customers per worksheet
    odd = factory.customer(
        team_id=world.east, display_name="<b>A & B</b>\x07\x1f", occupation=" 前后有空格 ", **STAMP
    )
    r = client.get(URL, params={"format": "xlsx"}, headers=factory.auth(world.lead))
    path = tmp_path / "x.xlsx"
    path.write_bytes(r.content)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["customers", "customers 2"]
    first, second = ([[c.value for c in row] for row in ws.iter_rows()] for ws in book.worksheets)
    assert ",".join(first[0]) == HEADER == ",".join(second[0])
    assert [row[0] for row in first[1:]] == [world.a, world.b]
    assert [row[0] for row in second[1:]] == [odd]
    assert (second[1][2], second[1][8]) == ("<b>A & B</b>", " 前后有空格 ")


def test_content_disposition_names_the_file_in_chinese(
    client: TestClient, factory: Factory, world: World
) -> None:
    r = client.get(URL, params={"format": "jsonl"}, headers=factory.auth(world.lead))
    stamp = f"{dt.date.today():%Y%m%d}"
    assert r.headers["content-disposition"] == (
        f"attachment; filename=\"customers-{stamp}.jsonl\"; filename*=UTF-8''%E5%AE%A2%E6%88%B7-{stamp}.jsonl"
    )


def test_sales_rep_may_not_export_and_analyst_gets_no_identifiers(
    client: TestClient, factory: Factory, world: World
) -> None:
    rep = factory.user("sales_rep", world.east)
    r = client.get(URL, params={"format": "vcard"}, headers=factory.auth(rep))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    analyst = factory.user("data_analyst", world.east)
    r = client.get(URL, params={"format": "jsonl"}, headers=factory.auth(analyst))
    first = json.loads(r.content.decode().splitlines()[0])
    assert "display_name" not in first and "phone" not in first and "birth_date" not in first
    assert first["id"] == world.a


def test_masks_apply_when_a_masked_role_may_export(
    client: TestClient, factory: Factory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No masked role may export today; give the service rep the right for this test only.
    grants = POLICY[Role.service_rep]
    for resource in ("customer", "contact_point"):
        monkeypatch.setitem(
            grants, resource, replace(grants[resource], actions=grants[resource].actions | {Action.export})
        )
    rep = factory.user("service_rep", world.north)
    r = client.get(URL, params={"format": "jsonl", "tag": "vip"}, headers=factory.auth(rep))
    row = json.loads(r.content)
    assert (row["phone"], row["email"]) == (["138****5678"], ["x***@example.com"])
    assert row["address"] == ["上海市浦东新区张江****"]  # the address mask keeps 6 characters
    card = client.get(URL, params={"format": "vcard", "tag": "vip"}, headers=factory.auth(rep)).text
    assert "TEL;VALUE=text;TYPE=cell;PREF=1:138****5678\r\n" in card


def test_restricted_customers_leave_every_format(client: TestClient, factory: Factory, world: World) -> None:
    factory.conn.execute(
        insert(ProcessingRestriction).values(
            customer_id=world.b, restricted=True, reason="art. 44", changed_at=utcnow()
        )
    )
    h = factory.auth(world.lead)
    for fmt in ("jsonl", "vcard", "csv"):
        body = client.get(URL, params={"format": fmt}, headers=h).content.decode("utf-8-sig")
        assert "HYPERLINK" not in body, fmt
        assert "王小明" in body, fmt


def test_streams_in_batches_each_audited_before_it_is_sent(
    client: TestClient, factory: Factory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_service, "BATCH_SIZE", 2)
    more = [factory.customer(team_id=world.east, **STAMP) for _ in range(3)]
    with client.stream("GET", URL, params={"bom": "false"}, headers=factory.auth(world.lead)) as r:
        body = b"".join(r.iter_bytes())
    ids = [int(row["id"]) for row in csv.DictReader(io.StringIO(body.decode()))]
    assert ids == [world.a, world.b, *more]
    events = factory.conn.execute(
        select(AuditEvent.details, AuditEvent.actor_id)
        .where(AuditEvent.action == "export")
        .order_by(AuditEvent.seq)
    ).all()
    assert [e.details for e in events] == [
        {"ids": [world.a, world.b], "count": 2},
        {"ids": more[:2], "count": 2},
        {"ids": more[2:], "count": 1},
    ]
    assert {e.actor_id for e in events} == {world.lead}


def test_plan_yields_one_chunk_per_batch(factory: Factory, world: World, database: object) -> None:
    from rapport.access.principal import Principal
    from rapport.access.records import Records
    from rapport.customers.schemas import CustomerExportParams
    from rapport.db import Database
    from rapport.pagination import CursorCodec

    assert isinstance(database, Database)
    for _ in range(5):
        factory.customer(team_id=world.east)
    lead = Principal(user_id=world.lead, username="lead", role=Role.team_lead, team_id=world.east)
    cursors = CursorCodec("k" * 32)
    with database.unit(write=False) as session:
        plan = export_service.plan_customer_export(
            Records(session, lead, cursors), CustomerExportParams(format="jsonl"), batch_size=3
        )
    chunks = list(plan.render(plan.stream_batches(lambda: database.unit(write=False), cursors)))
    assert [chunk.count(b"\n") for chunk in chunks] == [3, 3, 1]
    assert plan.rows == 7


def test_page_mode_keeps_limit_and_cursor_for_every_format(
    client: TestClient, factory: Factory, world: World
) -> None:
    h = factory.auth(world.lead)
    first = client.get(URL, params={"format": "vcard", "limit": 1}, headers=h)
    assert first.text.count("BEGIN:VCARD") == 1 and first.headers["content-length"]
    rest = client.get(
        URL, params={"format": "vcard", "limit": 5, "cursor": first.headers["x-next-cursor"]}, headers=h
    )
    assert rest.text.count("BEGIN:VCARD") == 1 and "x-next-cursor" not in rest.headers
    bad = client.get(URL, params={"format": "xlsx", "pseudonymised": "true"}, headers=h)
    assert bad.status_code == 422


def test_vcard_round_trip(client: TestClient, factory: Factory, world: World, tmp_path: Path) -> None:
    r = client.get(URL, params={"format": "vcard", "tag": "vip"}, headers=factory.auth(world.lead))
    path = tmp_path / "export.vcf"
    path.write_bytes(r.content)
    (row,) = read_vcards(path)
    v = row.values
    assert normalise.name(v["name"]) == "王小明"
    assert (v["family name"], v["given name"]) == ("王", "小明")
    assert normalise.phone(v["phone"]) == "+8613812345678"
    assert normalise.email(v["email"]) == "xm@example.com"
    assert normalise.date(v["birthday"]) == dt.date(1990, 3, 7)
    assert normalise.gender(v["gender"]) == "male"
    assert normalise.address(v["address"]) == {
        "province": "上海市", "city": "上海市", "district": "浦东新区", "rest": "张江路1号"
    }  # fmt: skip
    assert (v["postal code"], v["organisation"], v["occupation"], v["tags"]) == (
        "200120",
        "示例公司",
        "工程师",
        "vip,新客户",
    )
    assert v["external id"] == f"urn:rapport:customer:{world.a}"
