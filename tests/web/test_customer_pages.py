"""Customer pages without a browser (run on SQLite and PostgreSQL): scope, masks, conflicts, bulk."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.auth.cookies import CSRF_COOKIE
from tests.factories import PASSWORD, Factory


@pytest.fixture(autouse=True)
def fresh_throttle(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


def _login(client: TestClient, username: str) -> str:
    r = client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return str(client.cookies.get(CSRF_COOKIE))


def _customer_with_phone(client: TestClient, factory: Factory, owner: int, team: int) -> int:
    h = factory.auth(owner)
    r = client.post(
        "/api/v1/customers",
        json={
            "display_name": "司马光",
            "lifecycle_stage": "customer",
            "contact_points": [{"kind": "phone", "value": "138 0013 8000", "is_primary": True}],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    cid = int(r.json()["id"])
    assert team
    return cid


def test_list_search_by_spaced_phone_and_masks_for_service(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team, username="pg-rep")
    factory.user("service_rep", team, username="pg-service")
    cid = _customer_with_phone(client, factory, rep, team)
    _login(client, "pg-rep")
    r = client.get("/customers", params={"q": "138 0013 8000"})
    assert r.status_code == 200
    assert f'href="/customers/{cid}"' in r.text and "+8613800138000" in r.text
    client.cookies.clear()
    _login(client, "pg-service")
    r = client.get("/customers", params={"q": "司马"})
    assert "司马光" in r.text and "138****8000" in r.text and "+8613800138000" not in r.text


def test_analyst_cannot_search_by_name(client: TestClient, factory: Factory) -> None:
    factory.user("data_analyst", factory.team(), username="pg-analyst")
    _login(client, "pg-analyst")
    r = client.get("/customers", params={"q": "王"}, headers={"Accept-Language": "en"})
    assert r.status_code == 200
    assert 'data-testid="list-notice"' in r.text


def test_out_of_scope_360_is_a_friendly_404(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    factory.user("sales_rep", east, username="pg-east")
    other = factory.customer(factory.user("sales_rep", north), north)
    _login(client, "pg-east")
    r = client.get(f"/customers/{other}")
    assert r.status_code == 404 and 'data-testid="error-page"' in r.text
    assert r.headers["content-type"].startswith("text/html")


def test_profile_conflict_keeps_input(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team, username="pg-editor")
    cid = factory.customer(rep, team, display_name="旧名")
    csrf = _login(client, "pg-editor")
    r = client.post(
        f"/customers/{cid}",
        data={"display_name": "新名", "lifecycle_stage": "customer", "version": "1"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200 and "新名" in r.text
    r = client.post(
        f"/customers/{cid}",
        data={"display_name": "我的名字", "lifecycle_stage": "customer", "version": "1"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 409
    assert 'value="我的名字"' in r.text and 'data-testid="conflict"' in r.text
    assert 'name="version" value="2"' in r.text


def test_note_without_csrf_is_refused_and_with_it_lands_on_the_timeline(
    client: TestClient, factory: Factory
) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team, username="pg-noter")
    cid = factory.customer(rep, team)
    csrf = _login(client, "pg-noter")
    assert (
        client.post(f"/customers/{cid}/interactions", data={"kind": "note", "body": "x"}).status_code == 403
    )
    r = client.post(
        f"/customers/{cid}/interactions",
        data={"kind": "note", "body": "约好周五见面"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200 and "约好周五见面" in r.text and "备注已添加。" in r.text


def test_bulk_tag_and_saved_view(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    lead = factory.user("team_lead", team, username="pg-lead")
    a, b = factory.customer(lead, team), factory.customer(lead, team)
    csrf = _login(client, "pg-lead")
    r = client.post(
        "/customers/bulk",
        data={"ids": [str(a), str(b)], "action": "tag", "bulk_tag": "展会", "sort": "-id"},
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert r.status_code == 200 and "2 位客户已更改。" in r.text
    assert r.text.count('<span class="tag">展会</span>') == 2
    r = client.post(
        "/customers/views",
        data={"name": "展会客户", "tag": "展会", "q": "secret name", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/customers?tag=%E5%B1%95%E4%BC%9A"
    page = client.get("/customers").text
    assert "展会客户" in page and "secret name" not in page


def test_list_pages_link_back_to_the_previous_page(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team, username="pager-rep")
    ids = [factory.customer(rep, team, display_name=f"翻页{i:02d}") for i in range(55)]
    _login(client, "pager-rep")
    first = client.get("/customers", params={"sort": "id"})
    assert 'data-testid="prev-page"' not in first.text
    next_url = re.search(r'href="(/customers\?[^"]*cursor=[^"]*)"[^>]*data-testid="next-page"', first.text)
    assert next_url is not None
    second = client.get(html.unescape(next_url.group(1)))
    assert [int(i) for i in re.findall(r'href="/customers/(\d+)"', second.text)] == ids[50:]
    prev_url = re.search(r'href="(/customers\?[^"]*)"[^>]*data-testid="prev-page"', second.text)
    assert prev_url is not None
    back = client.get(html.unescape(prev_url.group(1)))
    assert [int(i) for i in re.findall(r'href="/customers/(\d+)"', back.text)] == ids[:50]
    assert "上一页" in second.text
