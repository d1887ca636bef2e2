"""/api/v1/analytics and /customers/{id}/scores: values, roles, scope, CSV export."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.analytics.jobs import run_jobs
from rapport.analytics.store import AnalyticsStore
from rapport.config import Settings
from rapport.db import Database
from rapport.models import AuditEvent
from tests.analytics.jobs_data import AS_OF, build
from tests.factories import Factory

API = "/api/v1"


@pytest.fixture
def store_path(app: FastAPI, settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "analytics.duckdb"
    app.state.settings = settings.model_copy(update={"analytics_path": path})
    return path


@pytest.fixture
def world(factory: Factory) -> dict[str, int]:
    team_a, team_b = factory.team(), factory.team()
    ids = build(factory, team_a, team_b)
    users = {
        "admin": factory.user("admin"),
        "team_lead": factory.user("team_lead", team_id=team_a),
        "crm_specialist": factory.user("crm_specialist", team_id=team_a),
        "data_analyst": factory.user("data_analyst", team_id=team_a),
        "sales_rep": factory.user("sales_rep", team_id=team_a),
        "service_rep": factory.user("service_rep", team_id=team_a),
    }
    return {**ids, **{f"user:{k}": v for k, v in users.items()}}


@pytest.fixture
def ran(database: Database, world: dict[str, int], store_path: Path) -> dict[str, int]:
    with AnalyticsStore.open(store_path) as st:
        run_jobs(database, st, as_of=AS_OF, only=["rfm", "descriptive"])
    return world


def auth(factory: Factory, world: dict[str, int], role: str) -> dict[str, str]:
    return factory.auth(world[f"user:{role}"])


@pytest.mark.parametrize("role", ["admin", "team_lead", "crm_specialist", "data_analyst"])
def test_readers_get_the_rfm_segments(
    client: TestClient, factory: Factory, ran: dict[str, int], role: str
) -> None:
    r = client.get(f"{API}/analytics/rfm/segments", headers=auth(factory, ran, role))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "rfm_segments"
    assert body["computed_at"] is not None
    assert [(i["segment"], i["customers"], i["revenue"], i["share"]) for i in body["items"]] == [
        ("at risk", 1, 1000.0, 0.333333),
        ("lost", 1, 50.0, 0.333333),
        ("potential loyalists", 1, 400.0, 0.333333),
    ]


@pytest.mark.parametrize("role", ["sales_rep", "service_rep"])
def test_other_roles_may_not_read_analytics(
    client: TestClient, factory: Factory, ran: dict[str, int], role: str
) -> None:
    for path in (
        "rfm/segments",
        "rfm/grid",
        "cohorts",
        "export?table=cohorts",
        "tables?table=forecast_backtest",
    ):
        r = client.get(f"{API}/analytics/{path}", headers=auth(factory, ran, role))
        assert r.status_code == 403, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_unauthenticated_is_refused(client: TestClient, ran: dict[str, int]) -> None:
    assert client.get(f"{API}/analytics/rfm/grid").status_code == 401


def test_tables(client: TestClient, factory: Factory, ran: dict[str, int]) -> None:
    h = auth(factory, ran, "data_analyst")

    def items(path: str) -> list[dict[str, Any]]:
        r = client.get(f"{API}/analytics/{path}", headers=h)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    assert [(i["r"], i["f"], i["customers"]) for i in items("rfm/grid")] == [(1, 1, 1), (2, 1, 1), (4, 4, 1)]
    assert [(i["key"], i["customers"]) for i in items("breakdowns?by=gender")] == [("female", 2), ("male", 2)]
    assert [(i["key"], i["customers"]) for i in items("breakdowns?by=region")] == [
        ("East", 2),
        ("=cmd", 1),
        ("North", 1),
    ]
    assert [(i["bucket"], i["customers"]) for i in items("distributions?of=frequency")] == [
        ("1", 2),
        ("2", 1),
    ]
    assert items("repeat-purchase") == [{"purchasers": 3, "repeat_purchasers": 1, "repeat_rate": 0.333333}]
    assert [(i["cohort"], i["period"], i["customers"]) for i in items("cohorts")] == [
        ("2025-01", 0, 1),
        ("2025-05", 0, 1),
        ("2025-06", 0, 1),
    ]
    monthly = items("revenue")
    assert [(i["period"][:10], i["revenue"], i["orders"]) for i in monthly] == [
        ("2025-01-01", 50.0, 1),
        ("2025-05-01", 1000.0, 1),
        ("2025-06-01", 400.0, 2),
    ]
    weekly = items("revenue?unit=week")
    assert [i["period"][:10] for i in weekly] == ["2025-01-06", "2025-04-28", "2025-05-26", "2025-06-16"]
    bad = client.get(f"{API}/analytics/breakdowns?by=shoe_size", headers=h)
    assert bad.status_code == 422
    # The generic route serves the same tables, and those of jobs that have not run yet as empty.
    assert items("tables?table=rfm_grid") == items("rfm/grid")
    params = client.get(f"{API}/analytics/tables?table=clv_params", headers=h).json()
    assert (params["name"], params["computed_at"], params["items"]) == ("clv_params", None, [])
    assert client.get(f"{API}/analytics/tables?table=rfm_customers", headers=h).status_code == 422


def test_csv_export_is_formula_safe_and_audited(
    client: TestClient, factory: Factory, ran: dict[str, int], db: Session
) -> None:
    r = client.get(
        f"{API}/analytics/export?table=breakdown_region", headers=auth(factory, ran, "data_analyst")
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="breakdown_region.csv"'
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows == [
        ["key", "customers", "share"],
        ["East", "2", "0.5"],
        ["'=cmd", "1", "0.25"],
        ["North", "1", "0.25"],
    ]
    events = db.execute(
        select(AuditEvent.action, AuditEvent.details).where(AuditEvent.resource == "analytics")
    ).all()
    assert ("export", {"table": "breakdown_region", "rows": 3}) in [(e[0], e[1]) for e in events]
    # Per-customer rows are not an API table.
    h = auth(factory, ran, "data_analyst")
    assert client.get(f"{API}/analytics/export?table=rfm_customers", headers=h).status_code == 422


def test_no_results_yet_is_an_empty_table(
    client: TestClient, factory: Factory, world: dict[str, int], store_path: Path
) -> None:
    h = auth(factory, world, "data_analyst")
    r = client.get(f"{API}/analytics/rfm/segments", headers=h)
    assert r.status_code == 200
    assert r.json() == {"name": "rfm_segments", "computed_at": None, "items": []}
    csv_body = client.get(f"{API}/analytics/export?table=cohorts", headers=h)
    assert csv_body.status_code == 200
    assert csv_body.content == "\ufeff\r\n".encode()


def test_customer_scores_for_readers_in_scope(
    client: TestClient, factory: Factory, ran: dict[str, int]
) -> None:
    r = client.get(f"{API}/customers/{ran['a']}/scores", headers=auth(factory, ran, "data_analyst"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == ran["a"]
    assert [(s["kind"], s["value"], s["label"], s["model_version"]) for s in body["items"]] == [
        ("rfm", 442.0, "potential loyalists", "rfm-1")
    ]
    assert body["items"][0]["details"]["r"] == 4
    # A customer without purchases has no scores.
    r = client.get(f"{API}/customers/{ran['d']}/scores", headers=auth(factory, ran, "admin"))
    assert r.status_code == 200
    assert r.json()["items"] == []


def test_customer_scores_scope(client: TestClient, factory: Factory, ran: dict[str, int]) -> None:
    lead = auth(factory, ran, "team_lead")
    assert client.get(f"{API}/customers/{ran['a']}/scores", headers=lead).status_code == 200
    # Team c belongs to the other team: out of the team lead's scope, so it does not exist for them.
    assert client.get(f"{API}/customers/{ran['c']}/scores", headers=lead).status_code == 404
    sales = auth(factory, ran, "sales_rep")
    assert client.get(f"{API}/customers/{ran['c']}/scores", headers=sales).status_code == 404
    # In scope, but a sales rep may not read analytics.
    assert client.get(f"{API}/customers/{ran['a']}/scores", headers=sales).status_code == 403
    assert client.get(f"{API}/customers/999999/scores", headers=lead).status_code == 404
