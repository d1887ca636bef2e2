"""Authentication: hashing, password policy, token lifecycle, API keys and login throttling."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from rapport.errors import InvalidInput
from rapport.models import ApiKey, AuditEvent, AuthToken, Customer, User
from rapport.users.service import create_user, set_active
from tests.factories import PASSWORD, Factory


@pytest.fixture(autouse=True)
def fresh_throttle(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


@pytest.fixture
def session(factory: Factory) -> Iterator[Session]:
    with Session(bind=factory.conn, join_transaction_mode="create_savepoint") as s:
        yield s


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body: dict[str, str] = r.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_passwords_are_stored_as_argon2id(client: TestClient, factory: Factory, session: Session) -> None:
    user = create_user(session, username="hash-check", password="Quiet-Harbour-Lamp-42", role="sales_rep")
    session.commit()
    stored = factory.row(User, user.id)["password_hash"]
    assert stored.startswith("$argon2id$")
    assert "Quiet-Harbour-Lamp-42" not in stored
    assert login(client, "hash-check", "Quiet-Harbour-Lamp-42")["role"] == "sales_rep"


@pytest.mark.parametrize(
    ("password", "reasons"),
    [
        ("Sh0rt!pw", ["must be at least 12 characters long"]),
        ("Password1234!", ["is too common"]),
        ("qwertyuiop12", ["is a keyboard or alphabet sequence"]),
        ("zzzzzzzzzzzzzz", ["uses too few different characters"]),
        ("Mx-Policy-Person-2024", ["must not contain the username"]),
        ("admin", ["must be at least 12 characters long", "is too common"]),
    ],
)
def test_password_policy_names_every_reason(
    client: TestClient, factory: Factory, session: Session, password: str, reasons: list[str]
) -> None:
    with pytest.raises(InvalidInput) as refused:
        create_user(session, username="policy-person", password=password, role="sales_rep")
    assert [e["message"] for e in refused.value.errors or []] == reasons

    user = factory.user("sales_rep", username="policy-person")
    before = factory.row(User, user)["password_hash"]
    r = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": password},
        headers=factory.auth(user),
    )
    assert r.status_code == 422
    problem = r.json()
    assert problem["type"] == "https://rapport.dev/problems/invalid-input"
    assert [(e["field"], e["message"]) for e in problem["errors"]] == [("password", m) for m in reasons]
    assert factory.row(User, user)["password_hash"] == before


def test_password_change_signs_out_every_session(client: TestClient, factory: Factory) -> None:
    user = factory.user("sales_rep", username="changer")
    tokens = login(client, "changer")
    h = bearer(tokens["access_token"])
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "not-my-password", "new_password": "Quiet-Harbour-Lamp-42"},
        headers=h,
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "current_password"
    r = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "Quiet-Harbour-Lamp-42"},
        headers=h,
    )
    assert r.status_code == 204
    assert factory.row(User, user)["password_hash"].startswith("$argon2id$")
    assert client.get("/api/v1/auth/me", headers=h).status_code == 401
    assert login(client, "changer", "Quiet-Harbour-Lamp-42")["role"] == "sales_rep"


def test_login_token_works_and_logout_revokes_it_at_once(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    user = factory.user("team_lead", team, username="lead-login")
    tokens = login(client, "lead-login")
    assert tokens["token_type"] == "bearer" and tokens["role"] == "team_lead"
    assert tokens["expires_in"] == 15 * 60
    h = bearer(tokens["access_token"])
    me = client.get("/api/v1/auth/me", headers=h)
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["username"], me.json()["team_id"]) == (user, "lead-login", team)
    assert me.json()["permissions"]["customer"] == ["assign", "create", "delete", "export", "read", "update"]
    # Only digests are stored.
    stored = factory.conn.execute(select(AuthToken.token_hash).where(AuthToken.user_id == user)).scalars()
    assert tokens["access_token"] not in set(stored)

    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    gone = client.get("/api/v1/auth/me", headers=h)
    assert gone.status_code == 401 and gone.json()["type"].endswith("/not-authenticated")
    # The refresh token of the same session died with it.
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="rotator")
    first = login(client, "rotator")
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert client.get("/api/v1/auth/me", headers=bearer(second["access_token"])).status_code == 200

    # Someone replays the spent refresh token: treat it as theft and end the whole session family.
    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json()["detail"] == "refresh token already used or revoked; log in again"
    assert client.get("/api/v1/auth/me", headers=bearer(second["access_token"])).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(first["access_token"])).status_code == 401
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401


def test_disabling_a_user_revokes_tokens_and_keys_immediately(
    client: TestClient, factory: Factory, session: Session
) -> None:
    user = factory.user("sales_rep", factory.team(), username="leaver")
    tokens = login(client, "leaver")
    h = bearer(tokens["access_token"])
    key = client.post("/api/v1/auth/api-keys", json={"name": "etl", "scopes": ["customer:read"]}, headers=h)
    assert key.status_code == 201
    kh = bearer(key.json()["key"])
    assert client.get("/api/v1/customers", headers=kh).status_code == 200

    set_active(session, "leaver", False)
    session.commit()
    for headers in (h, kh):
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401
    denied = client.post("/api/v1/auth/token", data={"username": "leaver", "password": PASSWORD})
    assert denied.status_code == 401
    assert factory.row(User, user)["is_active"] is False


def test_expired_token_is_401(client: TestClient, factory: Factory) -> None:
    user = factory.user("sales_rep", factory.team())
    expired = factory.token(user, ttl=dt.timedelta(seconds=-1))
    r = client.get("/api/v1/auth/me", headers=bearer(expired))
    assert r.status_code == 401
    assert r.json()["detail"] == "token expired; refresh it or log in again"
    fresh = factory.token(user)
    assert client.get("/api/v1/auth/me", headers=bearer(fresh)).status_code == 200


def test_api_key_is_limited_to_its_scopes_and_revocable(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    user = factory.user("sales_rep", team)
    h = factory.auth(user)
    cid = factory.customer(owner_id=user, team_id=team)
    created = client.post(
        "/api/v1/auth/api-keys", json={"name": "reporting", "scopes": ["customer:read"]}, headers=h
    )
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("rak_") and key["prefix"] == key["key"][:12]
    assert key["scopes"] == ["customer:read"]
    stored = factory.row(ApiKey, key["id"])
    assert stored["key_hash"] != key["key"] and key["key"] not in repr(dict(stored))
    kh = bearer(key["key"])

    assert client.get(f"/api/v1/customers/{cid}", headers=kh).status_code == 200
    forbidden = client.post("/api/v1/customers", json={"display_name": "不许"}, headers=kh)
    assert forbidden.status_code == 403
    assert forbidden.json()["type"] == "https://rapport.dev/problems/forbidden"
    assert factory.scalar(select(Customer.id).where(Customer.display_name == "不许")) is None
    # Keys cannot mint keys (no escalation from a leaked narrow key).
    assert (
        client.post("/api/v1/auth/api-keys", json={"name": "x", "scopes": ["*:read"]}, headers=kh).status_code
        == 422
    )

    listed = client.get("/api/v1/auth/api-keys", headers=h).json()
    assert [(k["id"], k["revoked_at"]) for k in listed] == [(key["id"], None)]
    assert "key" not in listed[0]
    assert client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/customers/{cid}", headers=kh).status_code == 401
    assert client.delete(f"/api/v1/auth/api-keys/{key['id']}", headers=h).status_code == 404


def test_repeated_failed_logins_are_throttled(app: FastAPI, client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="target")
    for _ in range(5):
        r = client.post("/api/v1/auth/token", data={"username": "target", "password": "wrong-guess-123"})
        assert r.status_code == 401
    sixth = client.post("/api/v1/auth/token", data={"username": "target", "password": "wrong-guess-123"})
    assert sixth.status_code == 429
    assert sixth.json()["type"] == "https://rapport.dev/problems/rate-limited"
    wait = int(sixth.headers["retry-after"])
    assert 1 <= wait <= app.state.settings.login_window_seconds + 1
    # Even the right password waits: the throttle answers before the password is checked.
    right = client.post("/api/v1/auth/token", data={"username": "target", "password": PASSWORD})
    assert right.status_code == 429
    app.state.throttle.reset()
    assert login(client, "target")["role"] == "sales_rep"


def test_login_with_nul_in_username_is_401_and_audited(client: TestClient, factory: Factory) -> None:
    factory.user("sales_rep", username="nul-target")
    r = client.post("/api/v1/auth/token", data={"username": "nul-target\x00", "password": PASSWORD})
    assert r.status_code == 401, r.text
    assert r.json()["type"] == "https://rapport.dev/problems/not-authenticated"
    events = factory.conn.execute(
        select(AuditEvent.action, AuditEvent.outcome, AuditEvent.actor_id).where(
            AuditEvent.resource == "session"
        )
    ).all()
    assert [tuple(e) for e in events] == [("login", "denied", None)]


def _credential_events(factory: Factory, user: int) -> list[tuple[str, str, str, str | None]]:
    rows = factory.conn.execute(
        select(AuditEvent.action, AuditEvent.resource, AuditEvent.outcome, AuditEvent.record_id)
        .where(AuditEvent.actor_id == user, AuditEvent.resource.in_(("api_key", "user")))
        .order_by(AuditEvent.seq)
    ).all()
    return [tuple(r) for r in rows]


def test_api_key_create_and_revoke_are_audited(client: TestClient, factory: Factory) -> None:
    user = factory.user("sales_rep", factory.team())
    h = factory.auth(user)
    made = client.post("/api/v1/auth/api-keys", json={"name": "sync", "scopes": ["customer:read"]}, headers=h)
    assert made.status_code == 201, made.text
    key_id = made.json()["id"]
    assert client.delete(f"/api/v1/auth/api-keys/{key_id}", headers=h).status_code == 204
    assert _credential_events(factory, user) == [
        ("create", "api_key", "ok", str(key_id)),
        ("revoke", "api_key", "ok", str(key_id)),
    ]


def test_password_change_and_wrong_current_password_are_audited(client: TestClient, factory: Factory) -> None:
    user = factory.user("sales_rep", username="audited-changer")
    h = factory.auth(user)
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "not-my-password", "new_password": "Quiet-Harbour-Lamp-42"},
        headers=h,
    )
    assert wrong.status_code == 422
    assert factory.row(User, user)["version"] == 1
    right = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "Quiet-Harbour-Lamp-42"},
        headers=h,
    )
    assert right.status_code == 204
    assert _credential_events(factory, user) == [
        ("password_change", "user", "denied", str(user)),
        ("password_change", "user", "ok", str(user)),
    ]


def test_wrong_current_passwords_are_throttled(client: TestClient, factory: Factory, app: FastAPI) -> None:
    app.state.throttle.reset()
    team = factory.team()
    user = factory.user("sales_rep", team)
    h = factory.auth(user)
    body = {"current_password": "not-the-password-1", "new_password": "Fresh-Meadow-Lantern-91"}
    codes = [client.post("/api/v1/auth/password", json=body, headers=h).status_code for _ in range(6)]
    assert codes == [422, 422, 422, 422, 422, 429]
    last = client.post("/api/v1/auth/password", json=body, headers=h)
    assert last.status_code == 429
    assert int(last.headers["retry-after"]) > 0


def test_api_key_cannot_change_its_owners_password(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    user = factory.user("sales_rep", team)
    created = client.post(
        "/api/v1/auth/api-keys", json={"name": "erp", "scopes": ["customer:read"]}, headers=factory.auth(user)
    )
    key = created.json()["key"]
    body = {"current_password": PASSWORD, "new_password": "Fresh-Meadow-Lantern-91"}
    r = client.post("/api/v1/auth/password", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    assert factory.conn.execute(select(User.version).where(User.id == user)).scalar_one() == 1
