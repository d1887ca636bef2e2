"""Import wizard pages without a browser: list, upload + mapping + preview, start, job progress
partial, cancel/revert, rejections CSV, and the friendly 403 for roles without imports."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.config import Settings
from rapport.ingest import jobs
from rapport.models import Customer, ImportJob, User
from rapport.models.base import table_of
from tests.factories import Factory
from tests.web.test_workspace_pages import login

CSV = (
    "客户编号,姓名,手机,邮箱\nC1,王小明,13800138000,wang@example.com\nC2,李雷,123,\nC3,韩梅梅,13700001234,\n"
)


@pytest.fixture(autouse=True)
def fresh_state(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


def _upload(client: TestClient, csrf: str, kind: str = "customers") -> str:
    r = client.post(
        "/imports/new",
        data={"csrf_token": csrf, "kind": kind},
        files={"file": ("客户.csv", CSV.encode("utf-8"), "text/csv")},
    )
    assert r.status_code == 200, r.text
    return r.text


def _draft(html: str) -> str:
    m = re.search(r'name="draft" value="([^"]+)"', html)
    assert m
    return m.group(1)


@pytest.mark.parametrize("role", ["sales_rep", "service_rep", "data_analyst"])
def test_roles_without_imports_get_the_friendly_403(client: TestClient, factory: Factory, role: str) -> None:
    name = f"noimp.{role.replace('_', '')}"
    factory.user(role, factory.team(), username=name)
    login(client, factory, name)
    for path in ("/imports", "/imports/new"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "Not allowed" in r.text
    assert 'href="/imports"' not in client.get("/tasks").text


def test_upload_proposes_the_mapping_and_previews_the_rows(client: TestClient, factory: Factory) -> None:
    factory.user("crm_specialist", factory.team(), username="imp.crm")
    csrf = login(client, factory, "imp.crm")
    assert 'href="/imports"' in client.get("/imports").text
    html = _upload(client, csrf)
    # One select per source column, with the proposed field selected.
    assert re.search(r'name="m0".*?<option value="external_id" selected>', html, re.S)
    assert re.search(r'name="m1".*?<option value="display_name" selected>', html, re.S)
    assert re.search(r'name="m2".*?<option value="phone" selected>', html, re.S)
    assert re.search(r'name="m3".*?<option value="email" selected>', html, re.S)
    assert 'data-testid="count-create">will be created: 2<' in html
    assert 'data-testid="count-reject">rejected: 1<' in html
    assert 'data-testid="preview-line-3"' in html and "not a valid phone number" in html
    # Ignoring the phone column: every row would be created.
    data = {"csrf_token": csrf, "draft": _draft(html), "kind": "customers", "mode": "create"}
    data |= {"m0": "external_id", "m1": "display_name", "m2": "", "m3": "email"}
    r = client.post("/imports/preview", data=data, headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    assert 'data-testid="count-create">will be created: 3<' in r.text
    assert 'data-testid="count-reject">rejected: 0<' in r.text
    # Two columns on one single-value field: the mapping is refused, the page says why.
    data |= {"m2": "display_name"}
    r = client.post("/imports/preview", data=data, headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 422 and 'data-testid="preview-error"' in r.text


def test_another_users_draft_is_not_found(client: TestClient, factory: Factory) -> None:
    factory.user("crm_specialist", factory.team(), username="imp.one")
    factory.user("crm_specialist", factory.team(), username="imp.two")
    csrf = login(client, factory, "imp.one")
    draft = _draft(_upload(client, csrf))
    csrf = login(client, factory, "imp.two")
    r = client.post("/imports/start", data={"csrf_token": csrf, "draft": draft, "kind": "customers"})
    assert r.status_code == 404


def test_start_runs_the_job_and_the_job_page_shows_progress(
    client: TestClient, factory: Factory, connection: Connection
) -> None:
    factory.user("crm_specialist", factory.team(), username="imp.start")
    csrf = login(client, factory, "imp.start")
    html = _upload(client, csrf)
    data = {"csrf_token": csrf, "draft": _draft(html), "kind": "customers", "file_name": "客户.csv"}
    data |= {"mode": "upsert", "match": "external_id", "m0": "external_id", "m1": "display_name"}
    data |= {"m2": "phone", "m3": "email"}
    r = client.post("/imports/start", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    job_id = connection.execute(select(func.max(ImportJob.id))).scalar_one()
    assert r.headers["location"] == f"/imports/{job_id}"
    # The background run finished (TestClient runs background tasks before returning).
    partial = client.get(f"/imports/{job_id}/progress", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith('<section id="progress"')
    assert 'data-status="done"' in partial.text and 'hx-trigger="every 1s"' not in partial.text
    assert 'data-testid="import-created">2<' in partial.text
    assert 'data-testid="import-rejected">1<' in partial.text
    assert 'value="100"' in partial.text and "3 of 3 rows" in partial.text
    page = client.get(f"/imports/{job_id}")
    assert page.status_code == 200 and "客户.csv" in page.text
    assert f'href="/imports/{job_id}/rejections"' in page.text
    csv = client.get(f"/imports/{job_id}/rejections")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == [
        "\ufeffline,column,field,reason",
        "3,手机,phone,not a valid phone number for its region",
    ]
    listing = client.get("/imports").text
    assert f'data-testid="import-{job_id}"' in listing
    # Done: cancel is refused (409, shown in the partial); revert removes the customers.
    r = client.post(f"/imports/{job_id}/cancel", headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 409 and 'data-testid="import-error"' in r.text
    r = client.post(f"/imports/{job_id}/revert", headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 200 and 'data-status="reverted"' in r.text
    count = connection.execute(select(func.count()).select_from(table_of(Customer))).scalar_one()
    assert count == 0


def test_queued_job_polls_and_can_be_cancelled(
    client: TestClient, factory: Factory, db: Session, settings: Settings
) -> None:
    team = factory.team()
    factory.user("team_lead", team, username="imp.lead")
    uid = factory.scalar(select(User.id).where(User.username == "imp.lead"))
    csrf = login(client, factory, "imp.lead")
    path = settings.data_dir / "queued.csv"
    path.write_text(CSV, encoding="utf-8")
    principal = Principal(user_id=uid, username="imp.lead", role=Role.team_lead, team_id=team)
    job = jobs.create_job(
        db,
        principal,
        path,
        kind="customers",
        mode="create",
        match_keys=["email"],
        mapping=None,
        options={"total_rows": 3},
    )
    db.flush()
    partial = client.get(f"/imports/{job['id']}/progress", headers={"HX-Request": "true"})
    assert 'data-status="queued"' in partial.text
    assert f'hx-get="/imports/{job["id"]}/progress" hx-trigger="every 1s"' in partial.text
    assert 'value="0"' in partial.text and 'data-testid="cancel-import"' in partial.text
    r = client.post(f"/imports/{job['id']}/cancel", headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 200 and 'data-status="cancelled"' in r.text
    assert 'hx-trigger="every 1s"' not in r.text


def test_other_users_job_is_not_found(client: TestClient, factory: Factory) -> None:
    factory.user("crm_specialist", factory.team(), username="imp.a")
    factory.user("team_lead", factory.team(), username="imp.b")
    csrf = login(client, factory, "imp.a")
    html = _upload(client, csrf)
    data = {"csrf_token": csrf, "draft": _draft(html), "kind": "customers", "m1": "display_name"}
    r = client.post("/imports/start", data=data, follow_redirects=False)
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    login(client, factory, "imp.b")
    assert client.get(f"/imports/{job_id}").status_code == 404


def test_upload_without_a_usable_file_shows_the_error(client: TestClient, factory: Factory) -> None:
    factory.user("admin", None, username="imp.admin")
    csrf = login(client, factory, "imp.admin")
    r = client.post(
        "/imports/new",
        data={"csrf_token": csrf, "kind": "customers"},
        files={"file": ("notes.pdf", b"%PDF", "application/pdf")},
    )
    assert r.status_code == 422 and 'class="field-error"' in r.text


def test_orders_upload_maps_order_columns_and_lists_rejections(client: TestClient, factory: Factory) -> None:
    factory.user("crm_specialist", factory.team(), username="imp.orders")
    csrf = login(client, factory, "imp.orders")
    body = "订单号,下单时间,商品编码,数量,单价,手机\nSO-1,2026-11-01 10:00,SKU-X,1,9.90,13800000000\n"
    r = client.post(
        "/imports/new",
        data={"csrf_token": csrf, "kind": "orders"},
        files={"file": ("订单.csv", body.encode("utf-8"), "text/csv")},
    )
    assert r.status_code == 200, r.text
    assert re.search(r'name="m0".*?<option value="order_number" selected>', r.text, re.S)
    assert re.search(r'name="m5".*?<option value="customer_phone" selected>', r.text, re.S)
    # Orders preview as counts and the rejected lines (the service has no per-row preview for orders).
    assert 'data-testid="count-create">will be created: 0<' in r.text
    assert 'data-testid="count-reject">rejected: 1<' in r.text
    assert "<li>Line 2: 手机: no customer matches this order&#39;s customer columns</li>" in r.text
