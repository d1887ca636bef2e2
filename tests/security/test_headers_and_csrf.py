"""Security headers on every response, no-store on personal data, browser sessions with CSRF."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.auth.cookies import csrf_token
from tests.factories import PASSWORD, Factory
from tests.security.conftest import World

EXPECTED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


@pytest.fixture(autouse=True)
def fresh_throttle(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


def _check_headers(r: object) -> None:
    headers = r.headers  # type: ignore[attr-defined]
    for name, value in EXPECTED.items():
        assert headers[name] == value, (name, headers.get(name))
    assert "camera=()" in headers["permissions-policy"] and "geolocation=()" in headers["permissions-policy"]


def test_headers_on_success_problem_and_middleware_answers(
    client: TestClient, factory: Factory, world: World
) -> None:
    h = factory.auth(world.east.rep)
    responses = [
        client.get("/healthz"),
        client.get("/api/v1/customers", headers=h),
        client.get("/api/v1/customers/999999", headers=h),  # 404 problem
        client.get("/api/v1/customers"),  # 401 problem
        client.post("/api/v1/customers", content=b"x" * 2_000_000, headers=h),  # 413 from middleware
        client.get("/no-such-route"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 401, 413, 404]
    for r in responses:
        _check_headers(r)
        assert "strict-transport-security" not in r.headers  # plain http


def test_hsts_only_over_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://crm.test") as c:
        r = c.get("/healthz")
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_docs_page_gets_a_csp_that_lets_swagger_load(client: TestClient) -> None:
    r = client.get("/api/v1/docs")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in csp and "frame-ancestors 'none'" in csp
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in r.text and "cdn.jsdelivr.net" not in r.text


def test_every_api_record_route_is_no_store(client: TestClient, factory: Factory, world: World) -> None:
    h = factory.auth(factory.user("admin"))
    for path in (
        "/api/v1/customers",
        f"/api/v1/customers/{world.east.records['customers']}",
        f"/api/v1/customers/{world.east.records['customers']}/360",
        "/api/v1/contact-points",
        f"/api/v1/orders/{world.east.records['orders']}",
        "/api/v1/interactions",
        "/api/v1/users",
        "/api/v1/auth/me",
        "/api/v1/customers/export",
    ):
        r = client.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "no-store", path
    # Errors too: a problem can name a record.
    assert client.get("/api/v1/customers/999999", headers=h).headers["cache-control"] == "no-store"


def _browser_login(client: TestClient, username: str) -> str:
    r = client.post("/api/v1/auth/session", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def test_cookie_login_sets_httponly_samesite_cookies(app: FastAPI, factory: Factory) -> None:
    factory.user("sales_rep", username="browser-user")
    with TestClient(app, base_url="https://crm.test") as c:
        r = c.post("/api/v1/auth/session", data={"username": "browser-user", "password": PASSWORD})
    assert r.status_code == 200
    assert "access_token" not in r.json() and "refresh_token" not in r.json()
    cookies = r.headers.get_list("set-cookie")
    session = next(x for x in cookies if x.startswith("rapport_session="))
    csrf = next(x for x in cookies if x.startswith("rapport_csrf="))
    for attr in ("HttpOnly", "Secure", "SameSite=lax", "Path=/api", "Max-Age=900"):
        assert attr in session, (attr, session)
    assert "HttpOnly" not in csrf and "Secure" in csrf and "SameSite=lax" in csrf
    assert csrf.split(";")[0].split("=", 1)[1] == r.json()["csrf_token"]


def test_plain_http_cookies_are_not_marked_secure(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="http-user")
    r = client.post("/api/v1/auth/session", data={"username": "http-user", "password": PASSWORD})
    session = next(x for x in r.headers.get_list("set-cookie") if x.startswith("rapport_session="))
    assert "Secure" not in session and "HttpOnly" in session


def test_cookie_sessions_need_the_csrf_token_on_unsafe_methods(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", factory.team(), username="csrf-user")
    token = _browser_login(client, "csrf-user")
    assert client.get("/api/v1/customers").status_code == 200  # safe method: cookie is enough
    body = {"display_name": "王小明"}
    missing = client.post("/api/v1/customers", json=body)
    assert missing.status_code == 403 and missing.json()["type"].endswith("/csrf-failed")
    wrong = client.post("/api/v1/customers", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    ok = client.post("/api/v1/customers", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201, ok.text
    out = client.delete("/api/v1/auth/session", headers={"X-CSRF-Token": token})
    assert out.status_code == 204
    assert client.get("/api/v1/customers").status_code == 401


def test_a_token_from_another_session_does_not_work(app: FastAPI, factory: Factory) -> None:
    factory.user("sales_rep", username="victim")
    factory.user("sales_rep", username="attacker")
    with TestClient(app) as victim, TestClient(app) as attacker:
        _browser_login(victim, "victim")
        attackers_token = _browser_login(attacker, "attacker")
        r = victim.post(
            "/api/v1/customers", json={"display_name": "x"}, headers={"X-CSRF-Token": attackers_token}
        )
    assert r.status_code == 403


def test_bearer_requests_are_exempt_and_api_keys_never_ride_in_cookies(
    client: TestClient, factory: Factory
) -> None:
    user = factory.user("sales_rep", factory.team())
    r = client.post("/api/v1/customers", json={"display_name": "李雷"}, headers=factory.auth(user))
    assert r.status_code == 201
    client.cookies.set("rapport_session", "rak_some-api-key")
    assert client.get("/api/v1/customers").status_code == 401


def test_csrf_token_is_bound_to_the_session() -> None:
    assert csrf_token("k", "rat_a") != csrf_token("k", "rat_b")
    assert csrf_token("k", "rat_a") != csrf_token("other-key", "rat_a")
    assert csrf_token("k", "rat_a") == csrf_token("k", "rat_a")


def test_cross_site_login_is_refused(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="login-csrf")
    form = {"username": "login-csrf", "password": PASSWORD}
    r = client.post("/api/v1/auth/session", data=form, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["type"].endswith("/csrf-failed")
    assert "rapport_session" not in r.cookies
    same = client.post("/api/v1/auth/session", data=form, headers={"Origin": "http://testserver"})
    assert same.status_code == 200
