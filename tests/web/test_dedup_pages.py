"""Duplicate review queue pages without a browser: the queue (masked per role), a cluster side by
side with the survivorship preview, dismiss, merge, the merge page with undo, and refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.dedup import service
from rapport.dedup.repository import CLUSTER
from rapport.models import Customer
from tests.dedup.fixture import Planted, plant
from tests.factories import Factory
from tests.web.test_workspace_pages import login

HX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def fresh_state(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


def _scan(
    db: Session, factory: Factory, team_id: int | None = None
) -> tuple[Planted, dict[frozenset[int], int]]:
    planted = plant(factory, team_id=team_id)
    result = service.scan(db, threshold=0.95)
    db.flush()
    return planted, {frozenset(c.members): c.id for c in result.clusters}


def _cluster_of(planted: Planted, clusters: dict[frozenset[int], int], key: str) -> int:
    return next(cid for members, cid in clusters.items() if planted.ids[key] in members)


@pytest.mark.parametrize("role", ["sales_rep", "service_rep", "data_analyst"])
def test_roles_without_the_queue_get_the_friendly_403(
    client: TestClient, factory: Factory, role: str
) -> None:
    name = f"nodedup.{role.replace('_', '')}"
    factory.user(role, factory.team(), username=name)
    login(client, factory, name)
    r = client.get("/dedup")
    assert r.status_code == 403 and "Not allowed" in r.text
    assert 'href="/dedup"' not in client.get("/tasks").text


def test_queue_lists_open_clusters_with_members_and_probabilities(
    client: TestClient, db: Session, factory: Factory
) -> None:
    planted, clusters = _scan(db, factory)
    factory.user("crm_specialist", factory.team(), username="dd.crm")
    login(client, factory, "dd.crm")
    r = client.get("/dedup")
    assert r.status_code == 200
    assert 'href="/dedup"' in r.text
    listed = [int(i) for i in re.findall(r'data-testid="cluster-(\d+)"', r.text)]
    assert sorted(listed) == sorted(clusters.values())
    assert "王小明" in r.text and "王曉明" in r.text and "Xiaoming Wang" in r.text
    # Different people with one name are not a cluster.
    assert "张伟" not in r.text and all(planted.ids["Z1"] not in m for m in clusters)
    assert re.search(r'class="num prob">\d+(\.\d+)?%<', r.text)


def test_team_lead_sees_masked_members_and_cannot_merge_hidden_ones(
    client: TestClient, db: Session, factory: Factory
) -> None:
    team = factory.team()
    planted, clusters = _scan(db, factory, team_id=team)  # A, B, C in the team; their copies are not
    factory.user("team_lead", team, username="dd.lead")
    login(client, factory, "dd.lead")
    r = client.get("/dedup")
    assert r.status_code == 200
    assert "王小明" in r.text and "王曉明" not in r.text and "outside your scope" in r.text
    page = client.get(f"/dedup/{_cluster_of(planted, clusters, 'A')}")
    assert page.status_code == 200 and "outside your scope" in page.text
    assert 'data-testid="merge"' not in page.text


def test_cluster_page_shows_members_side_by_side_with_the_preview(
    client: TestClient, db: Session, factory: Factory
) -> None:
    planted, clusters = _scan(db, factory)
    factory.user("admin", None, username="dd.admin")
    login(client, factory, "dd.admin")
    cid = _cluster_of(planted, clusters, "B")
    b, b2 = planted.ids["B"], planted.ids["B2"]
    r = client.get(f"/dedup/{cid}")
    assert r.status_code == 200
    assert f'data-testid="member-{b}"' in r.text and f'data-testid="member-{b2}"' in r.text
    # The first member survives by default; the other can be chosen instead.
    assert f'value="{min(b, b2)}"' in r.text and f'data-testid="choose-{max(b, b2)}"' in r.text
    assert re.search(r"<th scope=\"row\">city</th>", r.text)
    # Survivorship keeps the newer copy's birth date (B2, the second column), whoever survives.
    assert b < b2
    assert re.search(
        r'<th scope="row">birth_date</th>\s*'
        r'<td class="survivor ">1990-07-11</td>\s*<td class=" kept">1990-11-07</td>',
        r.text,
    )
    assert f"#{b} ↔ #{b2}" in r.text or f"#{b2} ↔ #{b}" in r.text
    r = client.get(f"/dedup/{cid}?survivor={max(b, b2)}")
    assert f'name="survivor_id" value="{max(b, b2)}"' in r.text


def test_dismiss_takes_the_cluster_off_the_queue(client: TestClient, db: Session, factory: Factory) -> None:
    planted, clusters = _scan(db, factory)
    factory.user("crm_specialist", factory.team(), username="dd.dismiss")
    csrf = login(client, factory, "dd.dismiss")
    cid = _cluster_of(planted, clusters, "C")
    assert client.post(f"/dedup/{cid}/dismiss").status_code == 403  # no CSRF token
    r = client.post(f"/dedup/{cid}/dismiss", headers={**HX, "X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.headers["HX-Redirect"] == f"/dedup/{cid}"
    assert db.execute(select(CLUSTER.c.status).where(CLUSTER.c.id == cid)).scalar_one() == "dismissed"
    assert f'data-testid="cluster-{cid}"' not in client.get("/dedup").text
    page = client.get(f"/dedup/{cid}").text
    assert 'data-testid="dismiss"' not in page and "Dismissed" in page
    again = client.post(f"/dedup/{cid}/dismiss", headers={**HX, "X-CSRF-Token": csrf})
    assert again.status_code == 409 and 'data-testid="dedup-problem"' in again.text


def test_merge_from_the_queue_then_undo(client: TestClient, db: Session, factory: Factory) -> None:
    planted, clusters = _scan(db, factory)
    factory.user("crm_specialist", factory.team(), username="dd.merge")
    csrf = login(client, factory, "dd.merge")
    cid = _cluster_of(planted, clusters, "B")
    b, b2 = planted.ids["B"], planted.ids["B2"]
    r = client.post(
        f"/dedup/{cid}/merge", data={"survivor_id": str(b2)}, headers={**HX, "X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == f"/dedup/{cid}"
    status, merge_id = db.execute(
        select(CLUSTER.c.status, CLUSTER.c.merge_id).where(CLUSTER.c.id == cid)
    ).one()
    assert status == "merged" and merge_id is not None
    assert db.execute(select(Customer.deleted_at).where(Customer.id == b)).scalar_one() is not None
    page = client.get(f"/dedup/{cid}").text
    assert f'href="/dedup/merges/{merge_id}"' in page and 'data-testid="undo-merge"' in page
    merge_page = client.get(f"/dedup/merges/{merge_id}")
    assert merge_page.status_code == 200 and f"#{b2}" in merge_page.text and f"#{b}" in merge_page.text
    r = client.post(f"/dedup/merges/{merge_id}/undo", headers={**HX, "X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.headers["HX-Redirect"] == f"/dedup/merges/{merge_id}"
    assert db.execute(select(Customer.deleted_at).where(Customer.id == b)).scalar_one() is None
    page = client.get(f"/dedup/merges/{merge_id}").text
    assert 'data-testid="undo-merge"' not in page and "Undone" in page


def test_merge_with_a_survivor_outside_the_cluster_is_refused(
    client: TestClient, db: Session, factory: Factory
) -> None:
    planted, clusters = _scan(db, factory)
    factory.user("admin", None, username="dd.bad")
    csrf = login(client, factory, "dd.bad")
    cid = _cluster_of(planted, clusters, "B")
    r = client.post(
        f"/dedup/{cid}/merge",
        data={"survivor_id": str(planted.ids["Z1"])},
        headers={**HX, "X-CSRF-Token": csrf},
    )
    assert r.status_code == 409 and 'data-testid="dedup-problem"' in r.text
    assert db.execute(select(CLUSTER.c.status).where(CLUSTER.c.id == cid)).scalar_one() == "open"
