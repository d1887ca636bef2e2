from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.models import AuthToken, User
from tests.factories import PASSWORD, Factory

API = "/api/v1/users"
GOOD_PASSWORD = "Quiet-Harbour-Lantern-42"


def _new(**kw: object) -> dict[str, object]:
    return {
        "username": "li.lei",
        "email": "Li.Lei@Example.com",
        "role": "sales_rep",
        "password": GOOD_PASSWORD,
        **kw,
    }


def test_admin_creates_user_who_can_log_in(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    h = factory.auth(factory.user("admin"))
    r = client.post(API, json=_new(team_id=team, display_name="李雷"), headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["username"], body["display_name"], body["email"], body["role"], body["team_id"]) == (
        "li.lei",
        "李雷",
        "li.lei@example.com",
        "sales_rep",
        team,
    )
    assert body["is_active"] is True and body["preferred_language"] == "zh-CN"
    assert "password" not in body and "password_hash" not in body
    assert r.headers["etag"] == f'"{body["id"]}.1"'
    login = client.post("/api/v1/auth/token", data={"username": "li.lei", "password": GOOD_PASSWORD})
    assert login.status_code == 200 and login.json()["role"] == "sales_rep"


def test_create_user_rules(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("admin"))
    factory.user("sales_rep", username="han.meimei")
    before = factory.scalar(select(func.count()).select_from(User))
    for payload, status, field in (
        (_new(username="Li"), 422, "username"),
        (_new(username="li lei"), 422, "username"),
        (_new(username="x" * 65), 422, "username"),
        (_new(password="short"), 422, "password"),
        (_new(password="password123456"), 422, "password"),
        (_new(role="superuser"), 422, "role"),
        (_new(email="not-an-email"), 422, "email"),
        (_new(team_id=999999), 422, "team_id"),
        (_new(password_hash="x"), 422, "password_hash"),
        (_new(is_active=False), 422, "is_active"),
        (_new(username="han.meimei"), 409, None),
    ):
        r = client.post(API, json=payload, headers=h)
        assert r.status_code == status, payload
        if field:
            assert r.json()["errors"][0]["field"] == field, payload
        else:
            assert r.json()["detail"] == "username 'han.meimei' is taken"
    assert factory.scalar(select(func.count()).select_from(User)) == before


def test_only_admin_creates_and_changes_users(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    target = factory.user("sales_rep", team)
    for role in ("team_lead", "crm_specialist", "sales_rep"):
        h = factory.auth(factory.user(role, team))
        assert client.post(API, json=_new(), headers=h).status_code == 403, role
        r = client.patch(
            f"{API}/{target}", json={"role": "admin"}, headers={**h, "If-Match": f'"{target}.1"'}
        )
        assert r.status_code == 403, role
        assert client.post(f"{API}/{target}/disable", headers=h).status_code == 403, role
    assert factory.row(User, target)["role"] == "sales_rep"
    admin = factory.auth(factory.user("admin"))
    assert client.delete(f"{API}/{target}", headers={**admin, "If-Match": f'"{target}.1"'}).status_code == 405


def test_sales_rep_sees_own_team_and_never_password_hash(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east, username="east.rep")
    mate = factory.user("sales_rep", east, username="east.mate")
    stranger = factory.user("sales_rep", north, username="north.rep")
    h = factory.auth(rep)
    listed = client.get(API, headers=h).json()["items"]
    assert [u["id"] for u in listed] == [mate, rep]
    assert all("password_hash" not in u for u in listed)
    assert client.get(f"{API}/{stranger}", headers=h).status_code == 404
    assert client.get(f"{API}/{mate}", headers=h).json()["username"] == "east.mate"
    assert [u["id"] for u in client.get(API, params={"q": "east.m"}, headers=h).json()["items"]] == [mate]
    analyst = factory.auth(factory.user("data_analyst", east))
    assert "email" not in client.get(f"{API}/{mate}", headers=analyst).json()


def test_update_user(client: TestClient, factory: Factory) -> None:
    team, other_team = factory.team(), factory.team()
    target = factory.user("sales_rep", team)
    h = factory.auth(factory.user("admin"))
    assert client.patch(f"{API}/{target}", json={"role": "team_lead"}, headers=h).status_code == 428
    r = client.patch(
        f"{API}/{target}",
        json={"role": "team_lead", "team_id": other_team, "preferred_language": "en"},
        headers={**h, "If-Match": f'"{target}.1"'},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["role"], r.json()["team_id"], r.json()["preferred_language"], r.json()["version"]) == (
        "team_lead",
        other_team,
        "en",
        2,
    )
    for body, field in (
        ({"role": None}, "role"),
        ({"username": "new"}, "username"),
        ({"password": PASSWORD}, "password"),
        ({"team_id": 999999}, "team_id"),
        ({"is_active": False}, "is_active"),
    ):
        r = client.patch(f"{API}/{target}", json=body, headers={**h, "If-Match": f'"{target}.2"'})
        assert r.status_code == 422, body
        assert r.json()["errors"][0]["field"] == field
    assert factory.row(User, target)["version"] == 2


def test_disable_revokes_sessions_and_enable_restores_login(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    target = factory.user("sales_rep", team, username="wang.wu")
    target_h = factory.auth(target)
    assert client.get("/api/v1/auth/me", headers=target_h).status_code == 200
    admin = factory.auth(factory.user("admin"))
    r = client.post(f"{API}/{target}/disable", headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["is_active"], r.json()["version"]) == (False, 2)
    assert client.get("/api/v1/auth/me", headers=target_h).status_code == 401
    live = factory.scalar(
        select(func.count())
        .select_from(AuthToken)
        .where(AuthToken.user_id == target, AuthToken.revoked_at.is_(None))
    )
    assert live == 0
    # Disabling twice changes nothing.
    assert client.post(f"{API}/{target}/disable", headers=admin).json()["version"] == 2
    r = client.post(f"{API}/{target}/enable", headers=admin)
    assert (r.json()["is_active"], r.json()["version"]) == (True, 3)
    # Old sessions stay revoked; the user logs in again.
    assert client.get("/api/v1/auth/me", headers=target_h).status_code == 401
    login = client.post("/api/v1/auth/token", data={"username": "wang.wu", "password": PASSWORD})
    assert login.status_code == 200


def test_last_admin_and_self_are_protected(client: TestClient, factory: Factory) -> None:
    admin = factory.user("admin")
    h = factory.auth(admin)
    r = client.post(f"{API}/{admin}/disable", headers=h)
    assert r.status_code == 409 and r.json()["detail"] == "you cannot disable your own account"
    r = client.patch(f"{API}/{admin}", json={"role": "sales_rep"}, headers={**h, "If-Match": f'"{admin}.1"'})
    assert r.status_code == 409
    assert r.json()["detail"] == "this is the last active administrator; make another user admin first"
    second = factory.user("admin")
    r = client.patch(f"{API}/{admin}", json={"role": "team_lead"}, headers={**h, "If-Match": f'"{admin}.1"'})
    assert r.status_code == 200
    # The former admin is now a team lead without a team: other users are out of sight.
    assert client.post(f"{API}/{second}/disable", headers=h).status_code == 404
    assert client.post(f"{API}/{admin}/enable", headers=h).status_code == 403


def test_other_team_user_is_404_for_rep(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    stranger = factory.user("sales_rep", north)
    h = factory.auth(rep)
    assert client.post(f"{API}/{stranger}/disable", headers=h).status_code == 404
    assert client.post(f"{API}/{stranger}/enable", headers=h).status_code == 404
    r = client.patch(
        f"{API}/{stranger}", json={"display_name": "x"}, headers={**h, "If-Match": f'"{stranger}.1"'}
    )
    assert r.status_code == 404
    assert factory.row(User, stranger)["is_active"] is True


def test_analyst_sees_colleagues_by_id_and_role_only(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    analyst = factory.user("data_analyst", team)
    colleague = factory.user("sales_rep", team, username="wang.wei")
    items = client.get("/api/v1/users", headers=factory.auth(analyst)).json()["items"]
    row = next(i for i in items if i["id"] == colleague)
    assert row["role"] == "sales_rep"
    assert not {"username", "display_name", "email"} & set(row)


def test_analyst_cannot_search_colleagues_by_username(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    analyst = factory.user("data_analyst", team)
    factory.user("sales_rep", team, username="zhao.min")
    r = client.get("/api/v1/users", params={"q": "zhao"}, headers=factory.auth(analyst))
    assert r.status_code == 403
    assert r.json()["detail"] == "your role may not search by username"


def test_users_filter_by_role_team_and_status(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    admin = factory.user("admin", team)
    rep = factory.user("sales_rep", team)
    gone = factory.user("sales_rep", team, active=False)
    h = factory.auth(admin)

    def ids(**params: object) -> list[int]:
        r = client.get("/api/v1/users", params={"sort": "id", "team_id": team, **params}, headers=h)
        return [u["id"] for u in r.json()["items"]]

    assert ids(role="sales_rep") == [rep, gone]
    assert ids(role="sales_rep", is_active="false") == [gone]
    assert ids(is_active="true") == [admin, rep]
