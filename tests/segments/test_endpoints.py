from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.segments.features import build_features
from tests.factories import Factory
from tests.segments.store import AS_OF, consent, customer, empty_store, score

API = "/api/v1/segments"
WECHAT_RISK = {
    "op": "and",
    "rules": [
        {"op": "top", "field": "clv_12m", "percent": 50},
        {"op": ">", "field": "churn_risk", "value": 0.6},
        {"op": "consent", "purpose": "marketing_wechat"},
    ],
}


@pytest.fixture
def store(app: FastAPI) -> Iterator[duckdb.DuckDBPyConnection]:
    """Customers 1..40: team -1 holds 1..20, team -2 holds 21..40; all consent, churn = id / 40."""
    con = empty_store()
    for i in range(1, 41):
        customer(con, i, team_id=-1 if i <= 20 else -2, owner_id=0)  # no real team has these ids
        score(con, i, "clv_12m", float(i))
        score(con, i, "churn_risk", i / 40)
        consent(con, i, "marketing_wechat")
    customer(con, 41, team_id=-1, profiling=False)
    build_features(con, AS_OF)
    app.state.analytics_store = con
    yield con
    del app.state.analytics_store
    con.close()


def _create(client: TestClient, h: dict[str, str], **kw: Any) -> Any:
    r = client.post(API, json={"name": "高价值流失风险", "definition": WECHAT_RISK, **kw}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()


def test_crud_round_trip(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    crm = factory.user("crm_specialist", team)
    h = factory.auth(crm)
    body = _create(client, h, description="WeChat win-back list")
    assert (body["owner_id"], body["team_id"], body["version"]) == (crm, team, 1)
    assert body["definition"] == WECHAT_RISK
    got = client.get(f"{API}/{body['id']}", headers=h)
    assert got.status_code == 200
    new_rule = {"op": "in", "field": "region", "values": ["华东"]}
    r = client.patch(
        f"{API}/{body['id']}", json={"definition": new_rule}, headers={**h, "If-Match": got.headers["ETag"]}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["definition"], r.json()["version"]) == (new_rule, 2)
    listed = client.get(f"{API}?q=高价值", headers=h).json()["items"]
    assert [s["id"] for s in listed] == [body["id"]]
    r = client.delete(f"{API}/{body['id']}", headers={**h, "If-Match": r.headers["ETag"]})
    assert r.status_code == 204
    assert client.get(f"{API}/{body['id']}", headers=h).status_code == 404


@pytest.mark.parametrize(
    ("definition", "field", "message"),
    [
        ({"op": ">", "field": "income", "value": 3}, "definition", "unknown field 'income'"),
        ({"op": ">", "field": "churn_risk", "value": "0.6"}, "definition", "must be a number, not str"),
        ({"op": "top", "field": "clv_12m", "percent": 150}, "definition", "percent must be above 0"),
        (
            {"op": "and", "rules": [{"op": "top", "field": "clv_12m", "percent": -1}]},
            "definition",
            "percent must be above 0",
        ),
    ],
)
def test_bad_rules_are_422_problems_naming_the_rule(
    client: TestClient, factory: Factory, definition: dict[str, Any], field: str, message: str
) -> None:
    h = factory.auth(factory.user("crm_specialist", factory.team()))
    r = client.post(API, json={"name": "bad", "definition": definition}, headers=h)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert message in problem["detail"]
    assert problem["errors"][0]["loc"][:2] == ["body", field]
    r = client.post(f"{API}/preview", json={"definition": definition}, headers=h)
    assert r.status_code == 422
    assert message in r.json()["detail"]


def test_who_may_write_and_read(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    lead = factory.auth(factory.user("team_lead", team))
    body = _create(client, lead)
    for role, status in (("data_analyst", 403), ("sales_rep", 403), ("service_rep", 403)):
        h = factory.auth(factory.user(role, team))
        assert (
            client.post(API, json={"name": "x", "definition": WECHAT_RISK}, headers=h).status_code == status
        )
        assert client.get(f"{API}/{body['id']}", headers=h).status_code == 200, role
    # A sales rep of another team does not see the lead's segment.
    other = factory.auth(factory.user("sales_rep", factory.team()))
    assert client.get(f"{API}/{body['id']}", headers=other).status_code == 404


def test_preview_counts_and_lists_first_members(
    client: TestClient, factory: Factory, store: duckdb.DuckDBPyConnection
) -> None:
    h = factory.auth(factory.user("data_analyst", factory.team()))
    r = client.post(f"{API}/preview", json={"definition": WECHAT_RISK}, headers=h)
    assert r.status_code == 200, r.text
    # Top half by value (21..40) with churn > 0.6 (25..40).
    assert r.json() == {"count": 16, "customer_ids": list(range(25, 41))}
    everyone = {"op": ">=", "field": "churn_risk", "value": 0}
    r = client.post(f"{API}/preview", json={"definition": everyone}, headers=h)
    assert r.json() == {"count": 40, "customer_ids": list(range(1, 21))}


def test_members_pages_and_respects_customer_scope(
    client: TestClient, factory: Factory, store: duckdb.DuckDBPyConnection
) -> None:
    crm = factory.auth(factory.user("crm_specialist", factory.team()))
    seg = _create(client, crm, definition={"op": ">", "field": "churn_risk", "value": 0.4})
    url = f"{API}/{seg['id']}/members"
    first = client.get(f"{url}?limit=10", headers=crm).json()
    assert (first["count"], first["customer_ids"]) == (24, list(range(17, 27)))
    second = client.get(f"{url}?limit=10&cursor={first['next_cursor']}", headers=crm).json()
    third = client.get(f"{url}?limit=10&cursor={second['next_cursor']}", headers=crm).json()
    assert second["customer_ids"] == list(range(27, 37))
    assert (third["customer_ids"], third["next_cursor"]) == ([37, 38, 39, 40], None)
    bad = client.get(f"{url}?cursor=abc", headers=crm)
    assert bad.status_code == 422
    sales_team = factory.team()
    store.execute("UPDATE customers SET team_id = ? WHERE customer_id <= 20", [sales_team])
    build_features(store, AS_OF)
    sales = factory.auth(factory.user("sales_rep", sales_team))
    # Sales reps read their team's segments only; share this one with the rep's team.
    lead = factory.auth(factory.user("team_lead", sales_team))
    shared = _create(client, lead, definition={"op": ">", "field": "churn_risk", "value": 0.4})
    scoped = client.get(f"{API}/{shared['id']}/members", headers=sales).json()
    assert (scoped["count"], scoped["customer_ids"]) == (4, [17, 18, 19, 20])


def test_store_not_built_is_503(client: TestClient, factory: Factory, app: FastAPI) -> None:
    app.state.analytics_store = empty_store()
    try:
        h = factory.auth(factory.user("crm_specialist", factory.team()))
        r = client.post(f"{API}/preview", json={"definition": WECHAT_RISK}, headers=h)
    finally:
        del app.state.analytics_store
    assert r.status_code == 503
    assert r.json()["type"].endswith("/analytics-unavailable")
