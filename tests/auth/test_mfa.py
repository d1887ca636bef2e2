"""Two-factor login: enrolment, codes at login, replay, recovery codes, role requirement, throttle."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from rapport.auth import mfa
from rapport.models import AuditEvent, RecoveryCode, UserTotp
from tests.conftest import MFA_T0
from tests.factories import PASSWORD, Factory

T0 = MFA_T0


@pytest.fixture(autouse=True)
def frozen(mfa_clock: list[float]) -> list[float]:
    return mfa_clock


def _login(client: TestClient, username: str, otp: str | None = None) -> tuple[int, dict[str, object]]:
    data = {"username": username, "password": PASSWORD}
    if otp is not None:
        data["otp"] = otp
    r = client.post("/api/v1/auth/token", data=data)
    return r.status_code, r.json()


def _enrol(client: TestClient, headers: dict[str, str]) -> tuple[str, list[str]]:
    r = client.post("/api/v1/auth/2fa/enrol", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    secret = r.json()["secret"]
    r = client.post("/api/v1/auth/2fa/confirm", json={"code": mfa.code_at(secret, T0)}, headers=headers)
    assert r.status_code == 200, r.text
    return secret, r.json()["recovery_codes"]


@pytest.fixture
def enrolled(client: TestClient, factory: Factory, frozen: list[float]) -> tuple[str, str, list[str]]:
    user = factory.user("sales_rep", username="two-factor-person")
    secret, codes = _enrol(client, factory.auth(user))
    frozen[0] = T0 + 60  # later steps: the confirmation code is spent
    return "two-factor-person", secret, codes


def test_code_generation_matches_rfc6238_vector() -> None:
    # RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); the 6-digit code is its tail.
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
    assert mfa.code_at(secret, 59) == "287082"
    assert mfa.code_at(secret, 1111111109) == "081804"


def test_enrolment_shows_an_otpauth_uri_once_and_stores_the_secret_sealed(
    client: TestClient, factory: Factory, connection: Connection
) -> None:
    user = factory.user("sales_rep", username="enrolling")
    h = factory.auth(user)
    r = client.post("/api/v1/auth/2fa/enrol", headers=h)
    secret, uri = r.json()["secret"], r.json()["otpauth_uri"]
    parts = urlsplit(uri)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", "/Rapport%3Aenrolling")
    assert q == {"secret": secret, "issuer": "Rapport", "algorithm": "SHA1", "digits": "6", "period": "30"}
    stored = connection.execute(select(UserTotp.secret, UserTotp.confirmed_at)).one()
    assert secret not in stored.secret and stored.secret.startswith("v1:")
    assert stored.confirmed_at is None
    # Not on until confirmed: logging in still needs the password only.
    assert _login(client, "enrolling")[0] == 200
    wrong = client.post("/api/v1/auth/2fa/confirm", json={"code": "000000"}, headers=h)
    assert wrong.status_code == 401 and wrong.json()["type"].endswith("/mfa-invalid")
    ok = client.post("/api/v1/auth/2fa/confirm", json={"code": mfa.code_at(secret, T0)}, headers=h)
    codes = ok.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    hashes = connection.execute(select(RecoveryCode.code_hash)).scalars().all()
    assert len(hashes) == 10 and all(h.startswith("$argon2id$v=19$m=16384,t=2,p=1$") for h in hashes)
    assert not set(codes) & set(hashes)
    again = client.post("/api/v1/auth/2fa/enrol", headers=h)
    assert again.status_code == 409


def test_login_asks_for_the_code_then_accepts_it(
    client: TestClient, enrolled: tuple[str, str, list[str]], frozen: list[float]
) -> None:
    username, secret, _ = enrolled
    status, problem = _login(client, username)
    assert status == 401
    assert problem["type"] == "https://rapport.dev/problems/mfa-required"
    assert "'otp' field" in str(problem["detail"])
    status, body = _login(client, username, mfa.code_at(secret, frozen[0]))
    assert status == 200 and body["restriction"] is None
    # One step of drift is accepted: the previous step's code, if not used yet.
    frozen[0] += 30
    assert _login(client, username, mfa.code_at(secret, frozen[0] + 30))[0] == 200


def test_the_same_code_is_refused_the_second_time(
    client: TestClient, enrolled: tuple[str, str, list[str]], frozen: list[float]
) -> None:
    username, secret, _ = enrolled
    code = mfa.code_at(secret, frozen[0])
    assert _login(client, username, code)[0] == 200
    status, problem = _login(client, username, code)
    assert status == 401 and problem["type"].endswith("/mfa-invalid")
    # Nor an older code from within the drift window.
    assert _login(client, username, mfa.code_at(secret, frozen[0] - 30))[0] == 401


def test_wrong_codes_count_toward_the_login_throttle(
    client: TestClient, enrolled: tuple[str, str, list[str]], frozen: list[float]
) -> None:
    username, secret, _ = enrolled
    for _ in range(5):
        assert _login(client, username, "123456")[0] == 401
    status, problem = _login(client, username, mfa.code_at(secret, frozen[0]))
    assert status == 429 and problem["type"].endswith("/rate-limited")


def test_recovery_codes_work_once(
    client: TestClient, enrolled: tuple[str, str, list[str]], connection: Connection
) -> None:
    username, _, codes = enrolled
    assert _login(client, username, codes[3].upper())[0] == 200
    assert _login(client, username, codes[3])[0] == 401
    assert _login(client, username, codes[4].replace("-", " "))[0] == 200
    used = connection.execute(select(RecoveryCode.used_at).where(RecoveryCode.used_at.is_not(None))).all()
    assert len(used) == 2
    actions = connection.execute(select(AuditEvent.action).where(AuditEvent.action == "recovery_code_used"))
    assert len(actions.all()) == 2


def test_disable_needs_password_and_code(
    client: TestClient, factory: Factory, enrolled: tuple[str, str, list[str]], frozen: list[float]
) -> None:
    username, secret, _ = enrolled
    _status, tokens = _login(client, username, mfa.code_at(secret, frozen[0]))
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    frozen[0] += 30
    bad = client.post(
        "/api/v1/auth/2fa/disable", json={"password": "wrong-password-1", "code": "000000"}, headers=h
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "password"
    ok = client.post(
        "/api/v1/auth/2fa/disable",
        json={"password": PASSWORD, "code": mfa.code_at(secret, frozen[0])},
        headers=h,
    )
    assert ok.status_code == 204
    assert _login(client, username)[0] == 200


def test_role_requirement_limits_unenrolled_sessions_to_enrolment(
    client: TestClient, factory: Factory, frozen: list[float]
) -> None:
    admin = factory.user("admin")
    rep = factory.user("service_rep", username="must-enrol")
    refused = client.put(
        "/api/v1/auth/2fa/roles", json={"role": "service_rep", "required": True}, headers=factory.auth(rep)
    )
    assert refused.status_code == 403
    r = client.put(
        "/api/v1/auth/2fa/roles", json={"role": "service_rep", "required": True}, headers=factory.auth(admin)
    )
    assert r.status_code == 200 and r.json()["service_rep"] is True and r.json()["sales_rep"] is False

    status, body = _login(client, "must-enrol")
    assert status == 200 and body["restriction"] == "mfa_enrol"
    h = {"Authorization": f"Bearer {body['access_token']}"}
    blocked = client.get("/api/v1/customers", headers=h)
    assert blocked.status_code == 403
    assert blocked.json()["type"].endswith("/mfa-enrolment-required")
    assert client.get("/api/v1/auth/me", headers=h).status_code == 200
    status_r = client.get("/api/v1/auth/2fa", headers=h).json()
    assert status_r == {"enrolled": False, "required_by_role": True, "recovery_codes_left": 0}
    secret = client.post("/api/v1/auth/2fa/enrol", headers=h).json()["secret"]
    done = client.post("/api/v1/auth/2fa/confirm", json={"code": mfa.code_at(secret, T0)}, headers=h)
    assert done.status_code == 200
    # The limited session ends with enrolment; a full one needs the second factor.
    assert client.get("/api/v1/auth/me", headers=h).status_code == 401
    frozen[0] += 30
    status, body = _login(client, "must-enrol", mfa.code_at(secret, frozen[0]))
    assert status == 200 and body["restriction"] is None
    full = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/api/v1/customers", headers=full).status_code == 200
    # While the role requires it, it cannot be switched off.
    off = client.post("/api/v1/auth/2fa/disable", json={"password": PASSWORD, "code": "000000"}, headers=full)
    assert off.status_code == 409


def test_refresh_keeps_the_restriction(client: TestClient, factory: Factory) -> None:
    admin = factory.user("admin")
    factory.user("team_lead", username="lead-must-enrol")
    client.put(
        "/api/v1/auth/2fa/roles", json={"role": "team_lead", "required": True}, headers=factory.auth(admin)
    )
    body = _login(client, "lead-must-enrol")[1]
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r.status_code == 200 and r.json()["restriction"] == "mfa_enrol"
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert client.get("/api/v1/customers", headers=h).status_code == 403


def test_api_keys_cannot_enrol(client: TestClient, factory: Factory) -> None:
    user = factory.user("sales_rep")
    _, secret = factory.api_key(user, ["*:read"], name="k")
    r = client.post("/api/v1/auth/2fa/enrol", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 403 and "API key" in r.json()["detail"]


def test_admin_resets_a_lost_second_factor(
    client: TestClient, factory: Factory, enrolled: tuple[str, str, list[str]], connection: Connection
) -> None:
    username, _, _ = enrolled
    uid = connection.execute(select(UserTotp.user_id)).scalar_one()
    done = client.post(f"/api/v1/users/{uid}/mfa-reset", headers=factory.auth(factory.user("admin")))
    assert done.status_code == 204
    assert _login(client, username)[0] == 200  # password alone again
    assert connection.execute(select(RecoveryCode.id)).all() == []
    # Team leads and reps may not, even for users they can see.
    team = factory.team()
    member = factory.user("sales_rep", team)
    lead = factory.user("team_lead", team)
    r = client.post(f"/api/v1/users/{member}/mfa-reset", headers=factory.auth(lead))
    assert r.status_code == 403
