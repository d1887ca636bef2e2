"""Workspace pages without a browser: dashboard, tasks, orders, organisations, administration."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rapport.models import Task, User
from rapport.models.base import utcnow
from tests.factories import PASSWORD, Factory


@pytest.fixture(autouse=True)
def fresh_state(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


def login(client: TestClient, factory: Factory, username: str, language: str = "en") -> str:
    """Log in through the page (the user prefers ``language``); returns the pages' CSRF token."""
    factory.conn.execute(update(User).where(User.username == username).values(preferred_language=language))
    r = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get("/tasks")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text) or re.search(
        r'"X-CSRF-Token": "([^"]+)"', page.text
    )
    assert match, page.text[:500]
    return match.group(1)


def test_dashboard_shows_the_reps_scope(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    factory.user("sales_rep", east, username="dash.east")
    rep = factory.scalar(select(User.id).where(User.username == "dash.east"))
    mine = factory.customer(rep, east, display_name="王芳", region="华东", lifecycle_stage="customer")
    factory.customer(None, north, display_name="北方", region="华北", lifecycle_stage="lead")
    factory.order(mine, Decimal("1234.50"))
    factory.task(mine, rep, title="今天回访", due_at=utcnow() - dt.timedelta(hours=1))
    login(client, factory, "dash.east")
    r = client.get("/")
    assert r.status_code == 200
    # Figures not cached yet come in a second request; tasks and activity are on the page at once.
    assert 'hx-get="/dashboard/figures"' in r.text and "今天回访" in r.text
    figures = client.get("/dashboard/figures", headers={"HX-Request": "true"})
    assert figures.status_code == 200 and figures.text.lstrip().startswith("{#") is False
    assert 'data-testid="kpi-customers">1<' in figures.text
    html = client.get("/").text  # now from the cache, in the page itself
    assert 'data-testid="kpi-customers">1<' in html and 'hx-get="/dashboard/figures"' not in html
    assert 'data-testid="chart-stages"' in html and 'data-values="[1]"' in html
    assert "&#34;华东&#34;" in html or "&quot;华东&quot;" in html or '"华东"' in html
    assert "华北" not in html
    assert "今天回访" in html and "王芳" in html
    assert "¥1,234.50" in html or "CN¥1,234.50" in html
    assert "<script>" not in html  # charts come from static/dashboard.js


def test_task_done_swaps_the_item(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team, username="tasks.rep")
    c = factory.customer(rep, team)
    task = factory.task(c, rep, title="寄样品", due_at=utcnow() - dt.timedelta(days=1))
    csrf = login(client, factory, "tasks.rep")
    r = client.get("/tasks?view=overdue")
    assert f'data-testid="task-{task}"' in r.text
    r = client.post(
        f"/tasks/{task}/done", data={"version": "1"}, headers={"HX-Request": "true", "X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    assert r.text.lstrip().startswith("<li") and "done-mark" in r.text
    assert factory.scalar(select(Task.status).where(Task.id == task)) == "done"
    # A second click with the old version: someone changed it; the item says so, nothing is lost.
    r = client.post(
        f"/tasks/{task}/done", data={"version": "1"}, headers={"HX-Request": "true", "X-CSRF-Token": csrf}
    )
    assert r.status_code == 409 and "Someone else changed this task" in r.text
    assert f'data-testid="task-{task}"' not in client.get("/tasks?view=overdue").text


def test_task_done_needs_csrf(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team, username="csrf.rep")
    task = factory.task(factory.customer(rep, team), rep)
    login(client, factory, "csrf.rep")
    r = client.post(f"/tasks/{task}/done", data={"version": "1"})
    assert r.status_code == 403
    assert factory.scalar(select(Task.status).where(Task.id == task)) == "open"


def test_other_teams_task_is_not_found(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    factory.user("sales_rep", east, username="nosy.rep")
    other = factory.user("sales_rep", north)
    task = factory.task(factory.customer(other, north), other)
    csrf = login(client, factory, "nosy.rep")
    r = client.post(f"/tasks/{task}/done", data={"version": "1", "csrf_token": csrf})
    assert r.status_code == 404


def test_order_page_hides_margins_from_service(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    factory.user("service_rep", team, username="svc.rep")
    factory.user("team_lead", team, username="lead.rep")
    c = factory.customer(None, team, display_name="李雷")
    product = factory.product(name="茶叶礼盒")
    order = factory.order(c, Decimal("200.00"))
    factory.order_line(order, product, quantity=2, unit_price=Decimal("100.00"))
    login(client, factory, "svc.rep")
    r = client.get(f"/orders/{order}")
    assert r.status_code == 200
    assert "茶叶礼盒" in r.text and 'data-testid="order-total"' in r.text
    assert 'data-testid="order-margin"' not in r.text and "Unit cost" not in r.text
    client.cookies.clear()
    login(client, factory, "lead.rep")
    r = client.get(f"/orders/{order}")
    assert 'data-testid="order-margin"' in r.text and "Unit cost" in r.text
    assert "¥80.00" in r.text  # margin 40 % of 200


def test_organisation_with_its_people(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team, username="org.rep")
    org = factory.organisation(rep, team, name="华为技术")
    factory.customer(rep, team, display_name="任正", organisation_id=org)
    login(client, factory, "org.rep")
    r = client.get("/organisations?q=华为")
    assert f'href="/organisations/{org}"' in r.text
    r = client.get(f"/organisations/{org}")
    assert r.status_code == 200 and "任正" in r.text


@pytest.mark.parametrize("role", ["team_lead", "crm_specialist", "sales_rep", "service_rep", "data_analyst"])
def test_administration_is_admin_only(client: TestClient, factory: Factory, role: str) -> None:
    factory.user(role, factory.team(), username=f"no.admin.{role.replace('_', '')}")
    login(client, factory, f"no.admin.{role.replace('_', '')}")
    for path in ("/admin/users", "/admin/teams", "/admin/roles", "/admin/audit"):
        r = client.get(path)
        assert r.status_code == 403, path
        assert "Not allowed" in r.text
    assert 'href="/admin/users"' not in client.get("/").text


def test_admin_creates_a_user_and_sees_field_errors_in_chinese(client: TestClient, factory: Factory) -> None:
    team = factory.team("华东 East")
    factory.user("admin", username="web.admin")
    csrf = login(client, factory, "web.admin", language="zh-CN")
    r = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "Bad!", "email": "x", "role": "sales_rep", "password": "short"},
    )
    assert r.status_code == 422
    assert 'data-testid="error-username">请使用 3 到 64 个小写字母、数字、点、下划线或连字符。<' in r.text
    assert 'data-testid="error-email">请输入有效的电子邮箱地址。<' in r.text
    assert 'value="Bad!"' in r.text and 'value="short"' not in r.text
    r = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "ok.user", "role": "sales_rep", "password": "short"},
    )
    assert r.status_code == 422 and 'data-testid="error-password"' in r.text
    r = client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "username": "new.rep",
            "role": "sales_rep",
            "team_id": str(team),
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, re.findall(r'data-testid="error-[^<]*<', r.text)
    new_id = factory.scalar(select(User.id).where(User.username == "new.rep"))
    assert r.headers["location"] == f"/admin/users/{new_id}"
    r = client.post(
        f"/admin/users/{new_id}",
        data={
            "csrf_token": csrf,
            "version": "1",
            "role": "team_lead",
            "team_id": str(team),
            "preferred_language": "zh-CN",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert factory.scalar(select(User.role).where(User.id == new_id)) == "team_lead"
    r = client.post(
        f"/admin/users/{new_id}/active", data={"csrf_token": csrf, "active": "false"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert factory.scalar(select(User.is_active).where(User.id == new_id)) is False
    r = client.post("/admin/teams", data={"csrf_token": csrf, "name": "华东 East"})
    assert r.status_code == 422 and 'data-testid="error-name">此名称已被使用。<' in r.text


def test_admin_audit_page_filters_and_verifies(client: TestClient, factory: Factory) -> None:
    factory.user("admin", username="audit.admin")
    csrf = login(client, factory, "audit.admin")
    r = client.get("/admin/audit", params={"actor": "nobody.here"})
    assert (
        r.status_code == 422 and 'data-testid="error-actor">There is no user with this username.<' in r.text
    )
    r = client.get("/admin/audit", params={"at_from": "2026-03-03", "at_to": "2026-03-01"})
    assert r.status_code == 422 and 'data-testid="error-at_to"' in r.text
    r = client.get("/admin/audit", params={"resource": "session", "actor": "audit.admin"})
    assert r.status_code == 200 and 'data-testid="audit-table"' in r.text
    assert "<td>login</td>" in r.text and ">audit.admin<" in r.text
    r = client.post("/admin/audit/verify", data={"csrf_token": csrf}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "Chain intact" in r.text
    r = client.get("/admin/roles")
    assert 'data-testid="cell-order-service_rep"' in r.text


def test_roles_that_may_not_change_tasks_get_no_done_button(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    task = factory.task(factory.customer(rep, team), rep, title="分析师只读")
    factory.user("data_analyst", team, username="ro.analyst")
    csrf = login(client, factory, "ro.analyst")
    r = client.get("/tasks?view=scope")
    assert f'data-testid="task-{task}"' in r.text and f'data-testid="done-{task}"' not in r.text
    r = client.post(f"/tasks/{task}/done", data={"version": "1", "csrf_token": csrf})
    assert r.status_code == 403


def test_orders_list_links_back_to_the_previous_page(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    factory.user("sales_rep", team, username="pager.orders")
    rep = factory.scalar(select(User.id).where(User.username == "pager.orders"))
    cid = factory.customer(rep, team)
    start = utcnow()
    numbers = [f"PG-{i:03d}" for i in range(55)]
    for i, number in enumerate(numbers):
        factory.order(cid, order_number=number, ordered_at=start - dt.timedelta(hours=i))
    login(client, factory, "pager.orders")
    first = client.get("/orders")
    assert 'rel="prev"' not in first.text
    assert re.findall(r"PG-\d{3}", first.text)[:50] == numbers[:50]
    next_url = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_url is not None
    second = client.get(next_url.group(1).replace("&amp;", "&"))
    assert re.findall(r"PG-\d{3}", second.text) == numbers[50:]
    prev_url = re.search(r'href="([^"]+)" rel="prev"', second.text)
    assert prev_url is not None and "Previous page" in second.text
    back = client.get(prev_url.group(1).replace("&amp;", "&"))
    assert re.findall(r"PG-\d{3}", back.text) == numbers[:50]
