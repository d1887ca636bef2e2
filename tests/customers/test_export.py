from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from rapport.models import AuditEvent, ProcessingRestriction
from rapport.models.base import utcnow
from tests.factories import Factory


def _rows(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_team_lead_exports_own_team_only_with_formulas_neutralised(
    client: TestClient, factory: Factory
) -> None:
    east, north = factory.team(), factory.team()
    lead = factory.user("team_lead", east)
    mine = factory.customer(team_id=east, display_name='=HYPERLINK("http://x")', city="上海")
    other = factory.customer(team_id=north, display_name="李雷")
    r = client.get("/api/v1/customers/export", headers=factory.auth(lead))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    rows = _rows(r.content)
    assert [int(row["id"]) for row in rows] == [mine]
    assert rows[0]["display_name"] == '\'=HYPERLINK("http://x")'
    assert rows[0]["city"] == "上海"
    event = factory.conn.execute(
        select(AuditEvent.action, AuditEvent.details, AuditEvent.actor_id).where(
            AuditEvent.action == "export"
        )
    ).one()
    assert event.details == {"ids": [mine], "count": 1}
    assert event.actor_id == lead
    assert other not in event.details["ids"]


def test_analyst_export_is_pseudonymised_and_sales_rep_may_not_export(
    client: TestClient, factory: Factory
) -> None:
    team = factory.team()
    analyst = factory.user("data_analyst", team)
    rep = factory.user("sales_rep", team)
    cid = factory.customer(team_id=team, display_name="王小明", region="浙江省")
    rows = _rows(client.get("/api/v1/customers/export", headers=factory.auth(analyst)).content)
    assert [int(row["id"]) for row in rows] == [cid]
    assert rows[0]["region"] == "浙江省"
    assert "display_name" not in rows[0]
    assert "birth_date" not in rows[0]
    denied = client.get("/api/v1/customers/export", headers=factory.auth(rep))
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"


def test_export_pages_with_a_cursor(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    lead = factory.user("team_lead", team)
    ids = [factory.customer(team_id=team) for _ in range(3)]
    h = factory.auth(lead)
    first = client.get("/api/v1/customers/export", params={"limit": 2}, headers=h)
    assert [int(r["id"]) for r in _rows(first.content)] == ids[:2]
    rest = client.get(
        "/api/v1/customers/export", params={"limit": 2, "cursor": first.headers["x-next-cursor"]}, headers=h
    )
    assert [int(r["id"]) for r in _rows(rest.content)] == ids[2:]
    assert "x-next-cursor" not in rest.headers


def test_customers_who_restricted_processing_leave_every_export(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    lead = factory.user("team_lead", team)
    kept, restricted = factory.customer(team_id=team), factory.customer(team_id=team)
    factory.conn.execute(
        insert(ProcessingRestriction).values(
            customer_id=restricted, restricted=True, reason="art. 44 request", changed_at=utcnow()
        )
    )
    h = factory.auth(lead)
    plain = client.get("/api/v1/customers/export", headers=h)
    assert [int(r["id"]) for r in _rows(plain.content)] == [kept]
    pseudo = client.get("/api/v1/customers/export", params={"pseudonymised": "true"}, headers=h)
    assert len(_rows(pseudo.content)) == 1
    # Still a customer: the record itself stays readable to staff in scope.
    assert client.get(f"/api/v1/customers/{restricted}", headers=h).status_code == 200
