from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from rapport.models import AuditEvent
from rapport.models.base import utcnow
from tests.factories import Factory

API = "/api/v1/audit"


def _events(factory: Factory) -> list[tuple[int | None, str, str, str | None, str]]:
    rows = factory.conn.execute(
        select(
            AuditEvent.actor_id,
            AuditEvent.action,
            AuditEvent.resource,
            AuditEvent.record_id,
            AuditEvent.outcome,
        ).order_by(AuditEvent.seq)
    ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_admin_reads_all_newest_first_with_filters(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep_e = factory.user("sales_rep", east)
    rep_n = factory.user("sales_rep", north)
    ce = factory.customer(rep_e, east)
    cn = factory.customer(rep_n, north)
    client.get(f"/api/v1/customers/{ce}", headers=factory.auth(rep_e))  # seq 1: read ok
    client.get(f"/api/v1/customers/{cn}", headers=factory.auth(rep_e))  # seq 2: access denied
    client.get(f"/api/v1/customers/{cn}", headers=factory.auth(rep_n))  # seq 3: read ok
    admin = factory.user("admin")
    h = factory.auth(admin)
    r = client.get(f"{API}/events", headers=h)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(e["seq"], e["actor_id"], e["action"], e["record_id"], e["outcome"]) for e in items] == [
        (3, rep_n, "read", str(cn), "ok"),
        (2, rep_e, "access", str(cn), "denied"),
        (1, rep_e, "read", str(ce), "ok"),
    ]
    assert items[0]["hash"] != items[0]["prev_hash"] and items[2]["prev_hash"] == "0" * 64

    def seqs(**params: object) -> list[int]:
        res = client.get(f"{API}/events", params=params, headers=h)
        assert res.status_code == 200, res.text
        return [e["seq"] for e in res.json()["items"]]

    # Each listing above and below is itself recorded (resource "audit"), so filter by resource.
    assert seqs(resource="customer", actor_id=rep_e) == [2, 1]
    assert seqs(resource="customer", outcome="denied") == [2]
    assert seqs(record_id=str(cn)) == [3, 2]
    assert seqs(action="read", resource="customer") == [3, 1]
    assert seqs(resource="customer", at_to=(utcnow() - dt.timedelta(hours=1)).isoformat()) == []
    first = client.get(f"{API}/events", params={"resource": "customer", "limit": 2}, headers=h).json()
    assert [e["seq"] for e in first["items"]] == [3, 2]
    rest = client.get(
        f"{API}/events",
        params={"resource": "customer", "limit": 2, "cursor": first["next_cursor"]},
        headers=h,
    ).json()
    assert [e["seq"] for e in rest["items"]] == [1] and rest["next_cursor"] is None
    audit_reads = [e for e in _events(factory) if e[2] == "audit"]
    assert audit_reads and all(e[:2] == (admin, "list") for e in audit_reads)
    assert [e for e in _events(factory) if e[2] == "customer" and e[0] == admin] == []


def test_team_lead_sees_only_their_teams_actions(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    lead = factory.user("team_lead", east)
    rep_e = factory.user("sales_rep", east)
    rep_n = factory.user("sales_rep", north)
    client.get(f"/api/v1/customers/{factory.customer(rep_e, east)}", headers=factory.auth(rep_e))
    client.get(f"/api/v1/customers/{factory.customer(rep_n, north)}", headers=factory.auth(rep_n))
    h = factory.auth(lead)
    items = client.get(f"{API}/events", headers=h).json()["items"]
    assert [(e["actor_id"], e["resource"]) for e in items] == [(rep_e, "customer")]
    assert client.get(f"{API}/events", params={"actor_id": rep_n}, headers=h).json()["items"] == []
    assert client.get(f"{API}/verify", headers=h).status_code == 403


def test_other_roles_are_refused_and_recorded(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    for role in ("sales_rep", "service_rep", "crm_specialist", "data_analyst"):
        user = factory.user(role, team)
        h = factory.auth(user)
        assert client.get(f"{API}/events", headers=h).status_code == 403, role
        assert client.get(f"{API}/verify", headers=h).status_code == 403, role
    denied = [e for e in _events(factory) if e[4] == "denied"]
    assert [(e[1], e[2]) for e in denied] == [("list", "audit"), ("verify", "audit")] * 4


def test_bad_filters_are_422(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("admin"))
    for params, field in (
        ({"outcome": "maybe"}, "outcome"),
        ({"resource": "Customer; drop"}, "resource"),
        ({"limit": 0}, "limit"),
        ({"at_from": "2024-01-02T00:00:00Z", "at_to": "2024-01-01T00:00:00Z"}, "at_to"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"sort": "seq"}, "sort"),
    ):
        r = client.get(f"{API}/events", params=params, headers=h)
        assert r.status_code == 422, params
        assert r.json()["errors"][0]["field"] == field, params


def test_verify_reports_intact_and_tampered_chain(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(rep, team)
    for _ in range(3):
        client.get(f"/api/v1/customers/{cid}", headers=factory.auth(rep))
    h = factory.auth(factory.user("admin"))
    ok = client.get(f"{API}/verify", headers=h).json()
    last = factory.conn.execute(select(AuditEvent.hash).where(AuditEvent.seq == 3)).scalar_one()
    assert ok == {"ok": True, "checked": 3, "last_seq": 3, "last_hash": last, "bad_seq": None, "reason": None}
    # The table refuses UPDATE/DELETE, so forge the next event instead: a correct link to the
    # previous hash but a hash that does not cover its content. Event 4 (the verify above) is real.
    factory.conn.execute(
        insert(AuditEvent).values(
            seq=5,
            at=utcnow(),
            actor_id=rep,
            actor_kind="user",
            action="read",
            resource="customer",
            record_id=str(cid),
            fields=[],
            outcome="ok",
            details={},
            prev_hash=factory.conn.execute(select(AuditEvent.hash).where(AuditEvent.seq == 4)).scalar_one(),
            hash="f" * 64,
        )
    )
    bad = client.get(f"{API}/verify", headers=h).json()
    assert (bad["ok"], bad["checked"], bad["last_seq"], bad["bad_seq"], bad["reason"]) == (
        False,
        4,
        4,
        5,
        "event content altered",
    )
    verifications = [e for e in _events(factory) if e[1] == "verify"]
    assert len(verifications) == 2
