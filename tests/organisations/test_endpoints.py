from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.models import AuditEvent, CustomField, Organisation
from tests.factories import Factory

API = "/api/v1/organisations"


def test_create_read_and_owner_defaults(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    h = factory.auth(rep)
    r = client.post(
        API,
        json={
            "name": " 上海星辰贸易有限公司 ",
            "industry": "零售",
            "size_band": "50-249",
            "website": "https://xingchen.example.cn",
            "region": "上海",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "上海星辰贸易有限公司"
    assert body["lifecycle_stage"] == "lead"
    assert (body["owner_id"], body["team_id"], body["version"]) == (rep, team, 1)
    assert r.headers["etag"] == f'"{body["id"]}.1"'
    got = client.get(f"{API}/{body['id']}", headers=h)
    assert got.status_code == 200
    assert got.json()["website"] == "https://xingchen.example.cn"


def test_bad_input_is_422_and_stores_nothing(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    h = factory.auth(factory.user("sales_rep", team))
    before = factory.scalar(select(func.count()).select_from(Organisation))
    cases = [
        ({"name": ""}, "name"),
        ({"name": "A", "website": "javascript:alert(1)"}, "website"),
        ({"name": "A", "size_band": "huge"}, "size_band"),
        ({"name": "A\x00B"}, "name"),
        ({"name": "A", "owner_id": 1}, "owner_id"),
        ({"name": "A", "attributes": {"tier": "gold"}}, "attributes.tier"),
    ]
    for payload, field in cases:
        r = client.post(API, json=payload, headers=h)
        assert r.status_code == 422, payload
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == field, payload
    assert factory.scalar(select(func.count()).select_from(Organisation)) == before


def test_attributes_follow_custom_field_definitions(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    factory.conn.execute(
        CustomField.__table__.insert().values(
            entity="organisation",
            key="tier",
            label="Tier",
            field_type="choice",
            choices=["gold", "silver"],
            required=False,
            version=1,
        )
    )
    h = factory.auth(rep)
    ok = client.post(API, json={"name": "甲公司", "attributes": {"tier": "gold"}}, headers=h)
    assert ok.status_code == 201 and ok.json()["attributes"] == {"tier": "gold"}
    bad = client.post(API, json={"name": "乙公司", "attributes": {"tier": "bronze"}}, headers=h)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["message"] == "must be one of ['gold', 'silver']"


def test_filters_and_prefix_search(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    a = factory.organisation(rep, team, name="星辰贸易", region="上海", lifecycle_stage="customer")
    b = factory.organisation(rep, team, name="星海物流", region="北京", lifecycle_stage="lead")
    c = factory.organisation(rep, team, name="100%_Solutions", region="上海", lifecycle_stage="lead")
    factory.organisation(rep, team, name="大星辰", region="上海")
    h = factory.auth(rep)

    def ids(**params: object) -> list[int]:
        r = client.get(API, params={"sort": "id", **params}, headers=h)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["items"]]

    assert ids(q="星") == [a, b]
    assert ids(q="星辰") == [a]
    assert ids(q="星", region="北京") == [b]
    assert ids(lifecycle_stage="lead", region="上海") == [c]
    # LIKE wildcards typed by the user are literal characters.
    assert ids(q="100%_") == [c]
    assert ids(q="100__") == []
    assert ids(q="1%") == []
    assert ids(owner_id=rep, q="星海") == [b]
    r = client.get(API, params={"lifecycle_stage": "vip"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lifecycle_stage"


def test_other_teams_organisation_is_404_everywhere(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep_east = factory.user("sales_rep", east)
    rep_north = factory.user("sales_rep", north)
    org = factory.organisation(rep_north, north, name="北方公司")
    h = factory.auth(rep_east)
    assert client.get(f"{API}/{org}", headers=h).status_code == 404
    assert client.get(f"{API}/{org}/people", headers=h).status_code == 404
    r = client.patch(f"{API}/{org}", json={"name": "x"}, headers={**h, "If-Match": f'"{org}.1"'})
    assert r.status_code == 404
    assert client.get(API, headers=h).json()["items"] == []
    assert factory.row(Organisation, org)["name"] == "北方公司"
    denied = factory.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.outcome == "denied", AuditEvent.resource == "organisation")
    )
    assert denied == 3


def test_update_needs_if_match_and_refuses_null_name(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    org = factory.organisation(rep, team, name="旧名")
    h = factory.auth(rep)
    assert client.patch(f"{API}/{org}", json={"name": "新名"}, headers=h).status_code == 428
    r = client.patch(f"{API}/{org}", json={"name": None}, headers={**h, "If-Match": f'"{org}.1"'})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"
    r = client.patch(f"{API}/{org}", json={"name": "新名"}, headers={**h, "If-Match": f'"{org}.1"'})
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["version"]) == ("新名", 2)
    stale = client.patch(f"{API}/{org}", json={"city": "杭州"}, headers={**h, "If-Match": f'"{org}.1"'})
    assert stale.status_code == 412


def test_soft_delete_hides_and_keeps_row(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    lead = factory.user("team_lead", team)
    rep = factory.user("sales_rep", team)
    org = factory.organisation(rep, team)
    # Sales reps may not delete organisations.
    r = client.delete(f"{API}/{org}", headers={**factory.auth(rep), "If-Match": f'"{org}.1"'})
    assert r.status_code == 403
    h = factory.auth(lead)
    assert client.delete(f"{API}/{org}", headers={**h, "If-Match": f'"{org}.1"'}).status_code == 204
    assert client.get(f"{API}/{org}", headers=h).status_code == 404
    row = factory.row(Organisation, org)
    assert row["deleted_at"] is not None and row["version"] == 2


def test_people_lists_customers_through_customer_scope(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    other = factory.user("sales_rep", north)
    org = factory.organisation(rep, east)
    mine1 = factory.customer(rep, east, organisation_id=org, display_name="王一")
    mine2 = factory.customer(rep, east, organisation_id=org, display_name="王二")
    factory.customer(other, north, organisation_id=org, display_name="北方人")
    factory.customer(rep, east, display_name="无公司")
    h = factory.auth(rep)
    r = client.get(f"{API}/{org}/people", params={"sort": "id", "limit": 1}, headers=h)
    assert r.status_code == 200, r.text
    first = r.json()
    assert [c["id"] for c in first["items"]] == [mine1]
    assert first["items"][0]["tags"] == []
    second = client.get(
        f"{API}/{org}/people", params={"sort": "id", "limit": 1, "cursor": first["next_cursor"]}, headers=h
    ).json()
    assert [c["id"] for c in second["items"]] == [mine2]
    assert second["next_cursor"] is None
    # Analysts read the same list pseudonymised: the customer masks still apply.
    analyst = factory.user("data_analyst", east)
    items = client.get(f"{API}/{org}/people", params={"sort": "id"}, headers=factory.auth(analyst)).json()
    assert len(items["items"]) == 3
    assert all("display_name" not in c for c in items["items"])
    assert client.get(f"{API}/999999/people", headers=h).status_code == 404
