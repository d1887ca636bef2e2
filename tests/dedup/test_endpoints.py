from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.dedup import service
from rapport.dedup.repository import CLUSTER
from tests.dedup.fixture import Planted, plant
from tests.factories import Factory

API = "/api/v1/dedup/clusters"


def _scan(
    db: Session, factory: Factory, team_id: int | None = None
) -> tuple[Planted, dict[frozenset[int], int]]:
    planted = plant(factory, team_id=team_id)
    result = service.scan(db, threshold=0.95)
    db.flush()
    return planted, {frozenset(c.members): c.id for c in result.clusters}


def test_admin_and_crm_list_open_clusters_with_members_and_pairs(
    client: TestClient, db: Session, factory: Factory
) -> None:
    planted, clusters = _scan(db, factory)
    crm = factory.user("crm_specialist", factory.team())
    r = client.get(f"{API}?limit=2", headers=factory.auth(crm))
    assert r.status_code == 200, r.text
    first = r.json()
    assert [c["id"] for c in first["items"]] == sorted(clusters.values())[:2]
    r = client.get(f"{API}?limit=2&cursor={first['next_cursor']}", headers=factory.auth(crm))
    second = r.json()
    assert [c["id"] for c in second["items"]] == sorted(clusters.values())[2:]
    assert second["next_cursor"] is None
    everything = first["items"] + second["items"]
    members = sorted(sorted(m["id"] for m in c["members"]) for c in everything)
    assert members == planted.expected_clusters()
    a = next(c for c in everything if planted.ids["A"] in {m["id"] for m in c["members"]})
    assert {m["display_name"] for m in a["members"]} == {"王小明", "王曉明", "Xiaoming Wang"}
    assert a["hidden_members"] == 0 and a["status"] == "open" and a["size"] == 3
    assert all(p["probability"] >= 0.95 for p in a["pairs"])


@pytest.mark.parametrize("role", ["sales_rep", "service_rep", "data_analyst"])
def test_roles_without_the_queue_get_403(client: TestClient, factory: Factory, role: str) -> None:
    user = factory.user(role, factory.team())
    assert client.get(API, headers=factory.auth(user)).status_code == 403


def test_team_lead_sees_only_clusters_with_team_customers_and_only_those_members(
    client: TestClient, db: Session, factory: Factory
) -> None:
    team = factory.team()
    planted, clusters = _scan(db, factory, team_id=team)  # A, B and C belong to the team; copies do not
    lead = factory.user("team_lead", team)
    r = client.get(API, headers=factory.auth(lead))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 3
    i = planted.ids
    shown = sorted(m["id"] for c in items for m in c["members"])
    assert shown == sorted([i["A"], i["B"], i["C"]])
    assert sorted(c["hidden_members"] for c in items) == [1, 1, 2]
    assert all(c["pairs"] == [] for c in items)  # every pair has a member outside the team
    other = factory.user("team_lead", factory.team())
    assert client.get(API, headers=factory.auth(other)).json()["items"] == []
    cid = next(iter(clusters.values()))
    assert client.get(f"{API}/{cid}", headers=factory.auth(other)).status_code == 404


def test_dismiss_then_conflict(client: TestClient, db: Session, factory: Factory) -> None:
    planted, clusters = _scan(db, factory)
    crm = factory.user("crm_specialist", factory.team())
    h = factory.auth(crm)
    cid = clusters[frozenset([planted.ids["B"], planted.ids["B2"]])]
    r = client.post(f"{API}/{cid}/dismiss", headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["decided_by"]) == ("dismissed", crm)
    assert client.post(f"{API}/{cid}/dismiss", headers=h).status_code == 409
    assert [c["id"] for c in client.get(API, headers=h).json()["items"]] == sorted(
        v for k, v in clusters.items() if v != cid
    )
    assert [c["id"] for c in client.get(f"{API}?status=dismissed", headers=h).json()["items"]] == [cid]
    assert db.execute(select(CLUSTER.c.status).where(CLUSTER.c.id == cid)).scalar_one() == "dismissed"
    assert client.get(f"{API}/999999", headers=h).status_code == 404


def test_merge_refuses_a_survivor_outside_the_cluster(
    client: TestClient, db: Session, factory: Factory
) -> None:
    planted, clusters = _scan(db, factory)
    admin = factory.user("admin")
    cid = clusters[frozenset([planted.ids["B"], planted.ids["B2"]])]
    r = client.post(f"{API}/{cid}/merge", json={"survivor_id": planted.ids["A"]}, headers=factory.auth(admin))
    assert r.status_code == 422, r.text


def test_merge_calls_merge_customers_and_closes_the_cluster(
    client: TestClient, db: Session, factory: Factory
) -> None:
    planted, clusters = _scan(db, factory)
    admin = factory.user("admin")
    cid = clusters[frozenset([planted.ids["B"], planted.ids["B2"]])]
    r = client.post(
        f"{API}/{cid}/merge",
        json={"survivor_id": planted.ids["B"], "reason": "same phone"},
        headers=factory.auth(admin),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "merged"
    from rapport.merge.service import resolve_customer_id  # type: ignore[import-not-found]

    assert resolve_customer_id(db, planted.ids["B2"]) == planted.ids["B"]


def test_undoing_the_merge_reopens_the_cluster_in_the_queue(
    client: TestClient, db: Session, factory: Factory
) -> None:
    planted, clusters = _scan(db, factory)
    admin = factory.user("admin")
    h = factory.auth(admin)
    cid = clusters[frozenset([planted.ids["B"], planted.ids["B2"]])]
    merged = client.post(f"{API}/{cid}/merge", json={"survivor_id": planted.ids["B"]}, headers=h)
    assert merged.status_code == 200, merged.text
    merge_id = db.execute(select(CLUSTER.c.merge_id).where(CLUSTER.c.id == cid)).scalar_one()
    assert merge_id is not None
    assert cid not in [c["id"] for c in client.get(API, headers=h).json()["items"]]

    undone = client.post(f"/api/v1/merges/{merge_id}/undo", headers=h)
    assert undone.status_code == 200, undone.text

    row = db.execute(
        select(CLUSTER.c.status, CLUSTER.c.decided_by, CLUSTER.c.decided_at, CLUSTER.c.merge_id).where(
            CLUSTER.c.id == cid
        )
    ).one()
    assert tuple(row) == ("open", None, None, None)
    assert [c["id"] for c in client.get(API, headers=h).json()["items"]] == sorted(clusters.values())
    again = client.get(f"{API}/{cid}", headers=h).json()
    assert (again["status"], sorted(m["id"] for m in again["members"])) == (
        "open",
        sorted([planted.ids["B"], planted.ids["B2"]]),
    )
    # The reopened cluster can be decided again (here: dismissed).
    r = client.post(f"{API}/{cid}/dismiss", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
