from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.customers import repository
from rapport.models import AuditEvent, ContactPoint, Customer
from tests.factories import Factory


def test_create_customer_with_contacts_normalises_and_is_searchable(
    client: TestClient, factory: Factory
) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    h = factory.auth(rep)
    r = client.post(
        "/api/v1/customers",
        json={
            "display_name": "王小明",
            "tags": ["vip", "vip", "华东"],
            "contact_points": [
                {"kind": "phone", "value": "138 0013 8000", "is_primary": True},
                {"kind": "email", "value": "Wang.XM@Example.COM"},
            ],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["display_name"] == "王小明"
    assert body["owner_id"] == rep and body["team_id"] == team
    assert body["tags"] == ["vip", "华东"]
    assert r.headers["etag"] == f'"{body["id"]}.1"'
    ids = factory.conn.execute(
        select(ContactPoint.id).where(ContactPoint.customer_id == body["id"]).order_by(ContactPoint.kind)
    ).scalars()
    values = [(row["kind"], row["value_normalized"]) for row in map(factory.contact_plain, ids)]
    assert values == [
        ("email", "wang.xm@example.com"),
        ("phone", "+8613800138000"),
    ]
    for q in (
        "小明",
        "王小明",
        "xiaoming",
        "wangxiaoming",
        "wxm",
        "138-0013-8000",
        "+86 13800138000",
        "WANG.XM@example.com",
    ):
        found = client.get("/api/v1/customers", params={"q": q}, headers=h).json()["items"]
        assert [c["id"] for c in found] == [body["id"]], q


def test_other_team_customer_is_404_and_unchanged(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep_east = factory.user("sales_rep", east)
    rep_north = factory.user("sales_rep", north)
    cid = factory.customer(owner_id=rep_north, team_id=north, display_name="李雷")
    h = factory.auth(rep_east)
    assert client.get(f"/api/v1/customers/{cid}", headers=h).status_code == 404
    r = client.patch(
        f"/api/v1/customers/{cid}",
        json={"display_name": "x"},
        headers={**h, "If-Match": f'"{cid}.1"'},
    )
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert factory.row(Customer, cid)["display_name"] == "李雷"
    denied = factory.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.outcome == "denied", AuditEvent.record_id == str(cid))
    )
    assert denied == 2


def test_update_requires_if_match_and_detects_conflicts(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team, display_name="韩梅梅")
    h = factory.auth(rep)
    assert client.patch(f"/api/v1/customers/{cid}", json={"city": "上海"}, headers=h).status_code == 428
    stale = client.patch(
        f"/api/v1/customers/{cid}", json={"city": "上海"}, headers={**h, "If-Match": f'"{cid}.7"'}
    )
    assert stale.status_code == 412
    ok = client.patch(
        f"/api/v1/customers/{cid}", json={"city": "上海"}, headers={**h, "If-Match": f'"{cid}.1"'}
    )
    assert ok.status_code == 200 and ok.json()["city"] == "上海" and ok.json()["version"] == 2
    again = client.patch(
        f"/api/v1/customers/{cid}", json={"city": "北京"}, headers={**h, "If-Match": f'"{cid}.1"'}
    )
    assert again.status_code == 412
    assert factory.row(Customer, cid)["city"] == "上海"


def test_mass_assignment_of_owner_is_refused(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team)
    h = {**factory.auth(rep), "If-Match": f'"{cid}.1"'}
    for field, value in (
        ("owner_id", 1),
        ("team_id", 1),
        ("version", 9),
        ("id", 5),
        ("created_at", "2020-01-01T00:00:00Z"),
    ):
        r = client.patch(f"/api/v1/customers/{cid}", json={field: value}, headers=h)
        assert r.status_code == 422, field
        assert r.json()["errors"][0]["field"] == field
    assert factory.row(Customer, cid)["version"] == 1


def test_analyst_reads_pseudonymised(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    analyst = factory.user("data_analyst", team)
    cid = factory.customer(display_name="张伟", family_name="张", given_name="伟")
    body = client.get(f"/api/v1/customers/{cid}", headers=factory.auth(analyst)).json()
    assert body["id"] == cid
    assert not {"display_name", "family_name", "given_name", "name_latin", "birth_date"} & set(body)
    r = client.get("/api/v1/customers", params={"q": "张伟"}, headers=factory.auth(analyst))
    assert r.status_code == 403


def test_soft_delete_hides_the_customer_and_restore_brings_it_back(
    client: TestClient, factory: Factory
) -> None:
    team = factory.team()
    lead = factory.user("team_lead", team)
    cid = factory.customer(owner_id=lead, team_id=team, display_name="周杰")
    h = factory.auth(lead)
    gone = client.delete(f"/api/v1/customers/{cid}", headers={**h, "If-Match": f'"{cid}.1"'})
    assert gone.status_code == 204
    assert gone.headers["etag"] == f'"{cid}.2"'
    assert client.get(f"/api/v1/customers/{cid}", headers=h).status_code == 404
    assert factory.row(Customer, cid)["deleted_at"] is not None
    assert (
        client.post(f"/api/v1/customers/{cid}/restore", headers={**h, "If-Match": f'"{cid}.1"'}).status_code
        == 412
    )
    back = client.post(f"/api/v1/customers/{cid}/restore", headers={**h, "If-Match": f'"{cid}.2"'})
    assert back.status_code == 200
    assert back.json()["display_name"] == "周杰"
    assert back.json()["version"] == 3
    assert client.get(f"/api/v1/customers/{cid}", headers=h).json()["id"] == cid


def test_sales_rep_cannot_delete_or_restore(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team)
    h = {**factory.auth(rep), "If-Match": f'"{cid}.1"'}
    assert client.delete(f"/api/v1/customers/{cid}", headers=h).status_code == 403
    assert factory.row(Customer, cid)["deleted_at"] is None


@pytest.mark.parametrize("common_threshold", [0, 10_000])
def test_name_search_gives_the_same_page_for_common_and_rare_prefixes(
    client: TestClient, factory: Factory, monkeypatch: pytest.MonkeyPatch, common_threshold: int
) -> None:
    # 0 forces the probe-per-customer plan used for frequent prefixes; 10,000 the collect-first plan.
    monkeypatch.setattr(repository, "common_prefix_rows", lambda customers, sort_column: common_threshold)
    team = factory.team()
    rep = factory.user("sales_rep", team)
    h = factory.auth(rep)
    ids = []
    for name in ("王伟", "王芳", "李娜", "王小明"):
        r = client.post("/api/v1/customers", json={"display_name": name}, headers=h)
        ids.append(r.json()["id"])
    found = client.get("/api/v1/customers", params={"q": "王", "sort": "id"}, headers=h).json()["items"]
    assert [c["id"] for c in found] == [ids[0], ids[1], ids[3]]
    found = client.get("/api/v1/customers", params={"q": "wang", "limit": 2, "sort": "-id"}, headers=h).json()
    assert [c["id"] for c in found["items"]] == [ids[3], ids[1]]
    rest = client.get(
        "/api/v1/customers",
        params={"q": "wang", "limit": 2, "sort": "-id", "cursor": found["next_cursor"]},
        headers=h,
    )
    assert [c["id"] for c in rest.json()["items"]] == [ids[0]]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"display_name": "x", "attributes": {"score": 100000000000000000000000000000}}', "score"),
        (b'{"display_name": "x", "attributes": {"score": NaN}}', "score"),
        (b'{"display_name": "x", "attributes": {"score": 1e400}}', "score"),
        (b'{"display_name": "x", "attributes": {"note": "a\\u0000b"}}', "note"),
    ],
)
def test_attribute_values_json_cannot_carry_are_422_and_store_nothing(
    client: TestClient, factory: Factory, raw: bytes, field: str
) -> None:
    admin = factory.user("admin", factory.team())
    h = factory.auth(admin)
    for key, kind in (("score", "number"), ("note", "text")):
        made = client.post(
            "/api/v1/custom-fields",
            json={"entity": "customer", "key": key, "label": key, "field_type": kind},
            headers=h,
        )
        assert made.status_code == 201, made.text
    r = client.post("/api/v1/customers", content=raw, headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"][:3] == ["body", "attributes", field]
    assert factory.scalar(select(func.count()).select_from(Customer)) == 0


def test_attribute_numbers_within_json_range_round_trip(client: TestClient, factory: Factory) -> None:
    admin = factory.user("admin", factory.team())
    h = factory.auth(admin)
    made = client.post(
        "/api/v1/custom-fields",
        json={"entity": "customer", "key": "score", "label": "score", "field_type": "number"},
        headers=h,
    )
    assert made.status_code == 201, made.text
    r = client.post(
        "/api/v1/customers", json={"display_name": "x", "attributes": {"score": 2**53}}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["attributes"] == {"score": 9007199254740992}


def test_reassigning_another_teams_customer_is_404_even_with_a_bad_owner(
    client: TestClient, factory: Factory
) -> None:
    east, north = factory.team(), factory.team()
    lead = factory.user("team_lead", east)
    cid = factory.customer(owner_id=None, team_id=north)
    h = {**factory.auth(lead), "If-Match": f'"{cid}.1"'}
    r = client.post(f"/api/v1/customers/{cid}/assignment", json={"owner_id": 999_999}, headers=h)
    assert r.status_code == 404
    assert factory.row(Customer, cid)["team_id"] == north


def test_team_lead_reassigns_within_scope(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    lead = factory.user("team_lead", team)
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=lead, team_id=team)
    h = {**factory.auth(lead), "If-Match": f'"{cid}.1"'}
    r = client.post(f"/api/v1/customers/{cid}/assignment", json={"owner_id": rep}, headers=h)
    assert r.status_code == 200
    assert r.json()["owner_id"] == rep
    assert r.json()["version"] == 2


def test_required_custom_attribute_must_be_present(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    admin = factory.user("admin", team)
    h = factory.auth(admin)
    field = {
        "entity": "customer",
        "key": "member_no",
        "label": "会员号",
        "field_type": "text",
        "required": True,
    }
    assert client.post("/api/v1/custom-fields", json=field, headers=h).status_code == 201
    missing = client.post("/api/v1/customers", json={"display_name": "赵敏"}, headers=h)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "attributes.member_no"
    ok = client.post(
        "/api/v1/customers", json={"display_name": "赵敏", "attributes": {"member_no": "M-1"}}, headers=h
    )
    assert ok.status_code == 201
    assert ok.json()["attributes"] == {"member_no": "M-1"}


def test_list_pages_walk_back_with_prev_cursor(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    h = factory.auth(factory.user("sales_rep", team))
    ids = [
        client.post("/api/v1/customers", json={"display_name": f"翻页{i}"}, headers=h).json()["id"]
        for i in range(5)
    ]
    first = client.get("/api/v1/customers", params={"limit": 2, "sort": "id"}, headers=h).json()
    assert [c["id"] for c in first["items"]] == ids[:2] and first["prev_cursor"] is None
    second = client.get(
        "/api/v1/customers", params={"limit": 2, "sort": "id", "cursor": first["next_cursor"]}, headers=h
    ).json()
    third = client.get(
        "/api/v1/customers", params={"limit": 2, "sort": "id", "cursor": second["next_cursor"]}, headers=h
    ).json()
    assert [c["id"] for c in second["items"]] == ids[2:4]
    assert [c["id"] for c in third["items"]] == ids[4:] and third["next_cursor"] is None
    back = client.get(
        "/api/v1/customers", params={"limit": 2, "sort": "id", "cursor": third["prev_cursor"]}, headers=h
    ).json()
    assert [c["id"] for c in back["items"]] == ids[2:4]
    start = client.get(
        "/api/v1/customers", params={"limit": 2, "sort": "id", "cursor": back["prev_cursor"]}, headers=h
    ).json()
    assert [c["id"] for c in start["items"]] == ids[:2] and start["prev_cursor"] is None
    assert start["next_cursor"] == first["next_cursor"]
