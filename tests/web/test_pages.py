"""The page shell without a browser: login, redirects, CSRF, language, profile, error pages."""

from __future__ import annotations

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


def _login(client: TestClient, username: str, next_: str = "/") -> str:
    r = client.post(
        "/login", data={"username": username, "password": PASSWORD, "next": next_}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == next_
    return str(client.cookies.get(CSRF_COOKIE))


def test_anonymous_page_redirects_to_login_with_next(client: TestClient) -> None:
    r = client.get("/profile?tab=1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/profile%3Ftab%3D1"


def test_login_page_in_the_browser_language(client: TestClient) -> None:
    r = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert r.status_code == 200
    assert "Log in to Rapport" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self';")
    assert r.headers["cache-control"] == "no-store"
    r = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "登录 Rapport" in r.text


def test_wrong_password_shows_a_clear_error(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="web-wrong")
    r = client.post(
        "/login", data={"username": "web-wrong", "password": "nope"}, headers={"Accept-Language": "en"}
    )
    assert r.status_code == 401
    assert "Wrong username or password, or the account is disabled." in r.text


def test_throttled_login_says_how_long_to_wait(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="web-throttle")
    for _ in range(5):
        client.post("/login", data={"username": "web-throttle", "password": "nope"})
    r = client.post(
        "/login", data={"username": "web-throttle", "password": PASSWORD}, headers={"Accept-Language": "en"}
    )
    assert r.status_code == 429
    assert "Too many failed logins. Try again in" in r.text


def test_login_then_profile_then_logout(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", factory.team("华东 East"), username="web-user")
    csrf = _login(client, "web-user", "/profile")
    r = client.get("/profile")
    assert r.status_code == 200 and "web-user" in r.text and "华东 East" in r.text
    # Without the CSRF token a change is refused.
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 403
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/profile", follow_redirects=False).status_code == 303


def test_login_refuses_foreign_next(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="web-next")
    r = client.post(
        "/login",
        data={"username": "web-next", "password": PASSWORD, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_language_switch_cookie_overrides(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="web-lang")
    _login(client, "web-lang")
    assert "欢迎" in client.get("/").text
    r = client.post("/language", data={"language": "en", "next": "/"}, follow_redirects=False)
    assert r.status_code == 303
    assert "Welcome, web-lang" in client.get("/").text


def test_profile_language_preference(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="web-pref")
    csrf = _login(client, "web-pref")
    r = client.post("/profile/language", data={"language": "en", "csrf_token": csrf})
    assert r.status_code == 200
    assert "Your language preference is saved." in r.text


def test_password_change_shows_field_errors(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="web-pw")
    csrf = _login(client, "web-pw")
    r = client.post(
        "/profile/password",
        data={"csrf_token": csrf, "current_password": "wrong", "new_password": "x", "confirm_password": "y"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422
    assert "两次输入的新密码不一致。" in r.text
    r = client.post(
        "/profile/password",
        data={
            "current_password": "wrong",
            "new_password": "Kx9!vLq2#zpW",
            "confirm_password": "Kx9!vLq2#zpW",
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 422 and "这不是您当前的密码。" in r.text
    r = client.post(
        "/profile/password",
        data={
            "current_password": PASSWORD,
            "new_password": "Kx9!vLq2#zpW",
            "confirm_password": "Kx9!vLq2#zpW",
        },
        headers={"X-CSRF-Token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.post("/login", data={"username": "web-pw", "password": "Kx9!vLq2#zpW"}).status_code == 200


def test_unknown_page_is_a_problem_but_missing_record_page_is_friendly(client: TestClient) -> None:
    r = client.get("/static/vendor/nope.js")
    assert r.status_code == 404


def test_vendor_files_come_from_node_modules(client: TestClient) -> None:
    r = client.get("/static/vendor/htmx.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/vendor/alpine-csp.min.js").status_code == 200
    assert client.get("/static/vendor/echarts.min.js").status_code == 200
    assert client.get("/static/vendor/pico.min.css").status_code == 200
    assert client.get("/static/app/app.js").status_code == 200


def test_pages_are_not_in_the_openapi_schema(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith("/api/v1/")]


PUBLIC_PAGES = {("GET", "/login"), ("POST", "/login"), ("GET", "/renew"), ("POST", "/language")}


def test_every_page_but_the_public_ones_needs_a_login(app: FastAPI, client: TestClient) -> None:
    from rapport.web import PAGE_ROUTERS
    from rapport.web.routing import PageRoute

    seen = set()
    for route in (r for router in PAGE_ROUTERS for r in router.routes):
        assert isinstance(route, PageRoute)
        for method in route.methods - {"HEAD"}:
            seen.add((method, route.path))
            if (method, route.path) in PUBLIC_PAGES:
                continue
            path = route.path.replace("{record_id}", "1")
            r = client.request(method, path, follow_redirects=False)
            assert r.status_code == 303, (method, path, r.status_code)
            assert r.headers["location"].startswith("/login?next="), (method, path)
    assert seen >= PUBLIC_PAGES


def test_expired_session_is_renewed_with_the_refresh_cookie(client: TestClient, factory: Factory) -> None:
    from sqlalchemy import update

    from rapport.models import AuthToken
    from rapport.models.base import utcnow

    factory.user("sales_rep", username="web-renew")
    _login(client, "web-renew")
    factory.conn.execute(update(AuthToken).where(AuthToken.kind == "access").values(expires_at=utcnow()))
    r = client.get("/profile", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/renew?next=/profile"
    r = client.get(r.headers["location"], follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/profile"
    assert client.get("/profile").status_code == 200
    # The refresh cookie was rotated: the new one renews again, a missing one means logging in.
    client.cookies.delete("rapport_session")
    assert client.get("/renew?next=/profile", follow_redirects=False).headers["location"] == "/profile"
    client.cookies.clear()
    r = client.get("/renew?next=/profile", follow_redirects=False)
    assert r.headers["location"] == "/login?next=/profile"


def test_htmx_request_without_session_gets_hx_redirect(client: TestClient) -> None:
    r = client.get(
        "/customers?q=x",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/customers?q=x"},
        follow_redirects=False,
    )
    assert r.status_code == 200 and r.headers["hx-redirect"] == "/login?next=/customers%3Fq%3Dx"
