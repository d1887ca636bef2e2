from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.models import CustomField, Team
from tests.factories import Factory


def test_team_crud_and_unique_name(client: TestClient, factory: Factory) -> None:
    factory.team("华东")
    h = factory.auth(factory.user("admin"))
    r = client.post("/api/v1/teams", json={"name": " 华南 ", "description": "广州、深圳"}, headers=h)
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert (r.json()["name"], r.json()["description"]) == ("华南", "广州、深圳")
    dup = client.post("/api/v1/teams", json={"name": "华东"}, headers=h)
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "name"
    rename = client.patch(
        f"/api/v1/teams/{tid}", json={"name": "华东"}, headers={**h, "If-Match": f'"{tid}.1"'}
    )
    assert rename.status_code == 409
    for payload in ({"name": ""}, {"name": "x" * 101}, {"name": "a\x00"}):
        assert client.post("/api/v1/teams", json=payload, headers=h).status_code == 422
    ok = client.patch(
        f"/api/v1/teams/{tid}", json={"name": "华南区"}, headers={**h, "If-Match": f'"{tid}.1"'}
    )
    assert ok.status_code == 200 and ok.json()["name"] == "华南区"
    assert client.delete(f"/api/v1/teams/{tid}", headers={**h, "If-Match": f'"{tid}.2"'}).status_code == 204
    assert factory.scalar(select(func.count()).select_from(Team).where(Team.id == tid)) == 0


def test_team_in_use_cannot_be_deleted(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    factory.customer(rep, team)
    factory.customer(rep, team)
    h = factory.auth(factory.user("admin"))
    r = client.delete(f"/api/v1/teams/{team}", headers={**h, "If-Match": f'"{team}.1"'})
    assert r.status_code == 409
    assert (
        r.json()["detail"] == f"team {team} still has 1 users, 2 customers; move them to another team first"
    )


def test_reps_see_only_their_team_and_cannot_write(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    h = factory.auth(rep)
    assert [t["id"] for t in client.get("/api/v1/teams", headers=h).json()["items"]] == [east]
    assert client.get(f"/api/v1/teams/{north}", headers=h).status_code == 404
    r = client.patch(f"/api/v1/teams/{north}", json={"name": "x"}, headers={**h, "If-Match": f'"{north}.1"'})
    assert r.status_code == 404
    r = client.patch(f"/api/v1/teams/{east}", json={"name": "x"}, headers={**h, "If-Match": f'"{east}.1"'})
    assert r.status_code == 403
    assert client.post("/api/v1/teams", json={"name": "新"}, headers=h).status_code == 403


def test_custom_field_rules(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("crm_specialist"))
    url = "/api/v1/custom-fields"
    r = client.post(
        url,
        json={
            "entity": "customer",
            "key": "tier",
            "label": "会员等级",
            "field_type": "choice",
            "choices": ["金", "银"],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    assert (r.json()["choices"], r.json()["required"]) == (["金", "银"], False)
    # Same key on the other entity is fine; on the same entity it is a conflict.
    other = client.post(
        url, json={"entity": "organisation", "key": "tier", "label": "x", "field_type": "text"}, headers=h
    )
    assert other.status_code == 201 and other.json()["choices"] == []
    dup = client.post(
        url, json={"entity": "customer", "key": "tier", "label": "x", "field_type": "text"}, headers=h
    )
    assert dup.status_code == 409 and dup.json()["detail"].startswith(
        "customer already has a custom field 'tier'"
    )
    for payload, field in (
        ({"entity": "customer", "key": "Tier", "label": "x", "field_type": "text"}, "key"),
        ({"entity": "customer", "key": "1st", "label": "x", "field_type": "text"}, "key"),
        ({"entity": "order", "key": "k", "label": "x", "field_type": "text"}, "entity"),
        ({"entity": "customer", "key": "k", "label": "x", "field_type": "money"}, "field_type"),
        ({"entity": "customer", "key": "k", "label": "x", "field_type": "choice"}, "choices"),
        ({"entity": "customer", "key": "k", "label": "x", "field_type": "choice", "choices": []}, "choices"),
        (
            {"entity": "customer", "key": "k", "label": "x", "field_type": "choice", "choices": ["a", "a"]},
            "choices",
        ),
        ({"entity": "customer", "key": "k", "label": "x", "field_type": "text", "choices": ["a"]}, "choices"),
    ):
        r = client.post(url, json=payload, headers=h)
        assert r.status_code == 422, payload
        assert r.json()["errors"][0]["field"] == field, payload
    text_id = other.json()["id"]
    r = client.patch(f"{url}/{text_id}", json={"choices": ["a"]}, headers={**h, "If-Match": f'"{text_id}.1"'})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "choices"
    r = client.patch(f"{url}/{fid}", json={"key": "level"}, headers={**h, "If-Match": f'"{fid}.1"'})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "key"
    r = client.patch(
        f"{url}/{fid}", json={"choices": ["金", "银", "铜"]}, headers={**h, "If-Match": f'"{fid}.1"'}
    )
    assert r.status_code == 200 and r.json()["choices"] == ["金", "银", "铜"]
    listed = client.get(url, params={"entity": "customer"}, headers=h).json()["items"]
    assert [f["key"] for f in listed] == ["tier"]
    count = factory.scalar(select(func.count()).select_from(CustomField))
    assert count == 2


def test_custom_fields_read_only_for_reps(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("sales_rep", factory.team()))
    r = client.post(
        "/api/v1/custom-fields",
        json={"entity": "customer", "key": "k", "label": "x", "field_type": "text"},
        headers=h,
    )
    assert r.status_code == 403
    assert client.get("/api/v1/custom-fields", headers=h).status_code == 200
