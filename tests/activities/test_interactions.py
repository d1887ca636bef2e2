from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.models import Interaction
from rapport.models.base import utcnow
from tests.factories import Factory

API = "/api/v1/interactions"


def test_log_a_call_author_is_the_caller(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(rep, team)
    before = utcnow()
    r = client.post(
        f"/api/v1/customers/{cid}/interactions",
        json={
            "kind": "call",
            "direction": "inbound",
            "channel": "phone",
            "subject": "询问发票",
            "body": "客户来电\n需要增值税专用发票",
        },
        headers=factory.auth(rep),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["customer_id"], body["author_id"], body["kind"], body["direction"]) == (
        cid,
        rep,
        "call",
        "inbound",
    )
    assert body["body"] == "客户来电\n需要增值税专用发票"
    occurred = dt.datetime.fromisoformat(body["occurred_at"])
    assert before <= occurred <= utcnow()


def test_author_is_not_writable_and_bad_input_is_422(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(rep, team)
    h = factory.auth(rep)
    url = f"/api/v1/customers/{cid}/interactions"
    future = (utcnow() + dt.timedelta(hours=1)).isoformat()
    for payload, field in (
        ({"kind": "note", "author_id": 1}, "author_id"),
        ({"kind": "fax"}, "kind"),
        ({"kind": "note", "direction": "sideways"}, "direction"),
        ({"kind": "note", "occurred_at": future}, "occurred_at"),
        ({"kind": "note", "body": "x" * 20_001}, "body"),
        ({"kind": "note", "subject": "a\x07b"}, "subject"),
        ({"kind": "note", "customer_id": cid}, "customer_id"),
    ):
        r = client.post(url, json=payload, headers=h)
        assert r.status_code == 422, payload
        assert r.json()["errors"][0]["field"] == field
    assert factory.scalar(select(func.count()).select_from(Interaction)) == 0


def test_only_author_rep_may_edit(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    author = factory.user("sales_rep", team)
    colleague = factory.user("sales_rep", team)
    lead = factory.user("team_lead", team)
    cid = factory.customer(author, team)
    iid = factory.interaction(cid, author_id=author, subject="原始")
    r = client.patch(
        f"{API}/{iid}",
        json={"subject": "改写"},
        headers={**factory.auth(colleague), "If-Match": f'"{iid}.1"'},
    )
    assert r.status_code == 403
    r = client.patch(
        f"{API}/{iid}", json={"subject": "更正"}, headers={**factory.auth(author), "If-Match": f'"{iid}.1"'}
    )
    assert r.status_code == 200 and r.json()["subject"] == "更正"
    r = client.patch(
        f"{API}/{iid}", json={"subject": "审核"}, headers={**factory.auth(lead), "If-Match": f'"{iid}.2"'}
    )
    assert r.status_code == 200 and r.json()["version"] == 3
    r = client.patch(
        f"{API}/{iid}", json={"kind": None}, headers={**factory.auth(lead), "If-Match": f'"{iid}.3"'}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "kind"
    assert factory.row(Interaction, iid)["subject"] == "审核"


def test_filters_and_masks(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    c1, c2 = factory.customer(rep, team), factory.customer(rep, team)
    now = utcnow()
    old = factory.interaction(c1, rep, kind="call", occurred_at=now - dt.timedelta(days=30))
    mid = factory.interaction(c1, rep, kind="email", occurred_at=now - dt.timedelta(days=3))
    new = factory.interaction(c2, rep, kind="call", occurred_at=now - dt.timedelta(hours=1))
    h = factory.auth(rep)

    def ids(**params: object) -> list[int]:
        r = client.get(API, params=params, headers=h)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids() == [new, mid, old]
    assert ids(customer_id=c1) == [mid, old]
    assert ids(kind="call") == [new, old]
    assert ids(occurred_from=(now - dt.timedelta(days=7)).isoformat()) == [new, mid]
    assert ids(occurred_to=(now - dt.timedelta(days=7)).isoformat(), sort="occurred_at") == [old]
    r = client.get(API, params={"occurred_from": now.isoformat(), "occurred_to": now.isoformat()}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "occurred_to"
    analyst = factory.auth(factory.user("data_analyst", team))
    item = client.get(f"{API}/{mid}", headers=analyst).json()
    assert item["kind"] == "email" and "subject" not in item and "body" not in item


def test_other_team_interactions_are_404(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    other = factory.user("sales_rep", north)
    theirs_customer = factory.customer(other, north)
    theirs = factory.interaction(theirs_customer, other)
    h = factory.auth(rep)
    assert client.get(f"{API}/{theirs}", headers=h).status_code == 404
    r = client.patch(f"{API}/{theirs}", json={"subject": "x"}, headers={**h, "If-Match": f'"{theirs}.1"'})
    assert r.status_code == 404
    r = client.post(f"/api/v1/customers/{theirs_customer}/interactions", json={"kind": "note"}, headers=h)
    assert r.status_code == 404
    assert client.get(API, headers=h).json()["items"] == []
    # Reps cannot delete interactions at all; leads delete within their team.
    lead = factory.auth(factory.user("team_lead", north))
    assert client.delete(f"{API}/{theirs}", headers={**h, "If-Match": f'"{theirs}.1"'}).status_code == 404
    assert client.delete(f"{API}/{theirs}", headers={**lead, "If-Match": f'"{theirs}.1"'}).status_code == 204
