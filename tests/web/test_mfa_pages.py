"""Two-factor authentication from the profile page, over HTTP: start, QR code and key, a wrong
code, confirm (recovery codes once), log in with a code, and turn it off with password + code."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, insert, select

from rapport.auth import mfa
from rapport.models import RecoveryCode, RoleMfaRequirement, User, UserTotp
from rapport.models.base import utcnow
from rapport.web.mfa_pages import qr_svg
from tests.conftest import MFA_T0
from tests.factories import PASSWORD, Factory
from tests.web.test_workspace_pages import login

T0 = MFA_T0


@pytest.fixture(autouse=True)
def frozen(mfa_clock: list[float]) -> list[float]:
    return mfa_clock


def _secret(page: str) -> str:
    m = re.search(r'data-testid="mfa-secret">([A-Z2-7 ]+)<', page)
    assert m, page[:2000]
    return m.group(1).replace(" ", "")


def test_enrol_confirm_and_disable_from_the_profile_page(
    client: TestClient, factory: Factory, connection: Connection, frozen: list[float]
) -> None:
    factory.user("sales_rep", factory.team(), username="mfa.page")
    uid = connection.execute(select(User.id).where(User.username == "mfa.page")).scalar_one()
    csrf = login(client, factory, "mfa.page")

    profile = client.get("/profile").text
    assert 'data-testid="mfa-status">Off<' in profile
    assert 'action="/profile/2fa/enrol"' in profile

    r = client.post("/profile/2fa/enrol", data={"csrf_token": csrf})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    secret = _secret(r.text)
    uri = html.unescape(re.search(r'data-testid="mfa-uri">([^<]+)<', r.text).group(1))  # type: ignore[union-attr]
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", "/Rapport%3Amfa.page")
    assert parse_qs(parts.query)["secret"] == [secret]
    # The QR code is the URI itself, drawn inline as SVG.
    assert str(qr_svg(uri, "QR code for your authenticator app")) in r.text
    assert r.text.count("<svg") == 1
    pending = connection.execute(select(UserTotp.confirmed_at).where(UserTotp.user_id == uid)).one()
    assert pending.confirmed_at is None

    wrong = f"{(int(mfa.code_at(secret, T0)) + 1) % 1_000_000:06d}"
    r = client.post("/profile/2fa/confirm", data={"csrf_token": csrf, "code": wrong})
    assert r.status_code == 422
    assert 'data-testid="error-code"' in r.text and "The code does not match" in r.text
    assert _secret(r.text) == secret  # the same secret again, not a new one

    r = client.post("/profile/2fa/confirm", data={"csrf_token": csrf, "code": mfa.code_at(secret, T0)})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    codes = re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", r.text)
    assert len(codes) == mfa.RECOVERY_CODES == len(set(codes))
    stored = connection.execute(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == uid)).scalars()
    assert all(c not in h for h in stored for c in codes)  # only hashes are kept
    assert connection.execute(
        select(UserTotp.confirmed_at.is_not(None)).where(UserTotp.user_id == uid)
    ).scalar_one()

    # Shown once: the profile now only says it is on and how many codes are left.
    profile = client.get("/profile").text
    assert 'data-testid="mfa-status">On<' in profile and "10 recovery codes left" in profile
    assert all(c not in profile for c in codes)
    again = client.post("/profile/2fa/enrol", data={"csrf_token": csrf}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/profile"

    # Logging in now asks for the second factor.
    frozen[0] = T0 + 60
    client.cookies.clear()
    r = client.post("/login", data={"username": "mfa.page", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 401 and 'name="otp"' in r.text
    data = {"username": "mfa.page", "password": PASSWORD, "otp": mfa.code_at(secret, T0 + 60)}
    assert client.post("/login", data=data, follow_redirects=False).status_code == 303
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/profile").text).group(1)  # type: ignore[union-attr]

    # Turning it off needs the password and a fresh code (the login's code is spent).
    frozen[0] = T0 + 120
    r = client.post(
        "/profile/2fa/disable",
        data={"csrf_token": csrf, "password": PASSWORD, "code": mfa.code_at(secret, T0 + 60)},
    )
    assert r.status_code == 422 and 'data-testid="error-code"' in r.text
    r = client.post(
        "/profile/2fa/disable",
        data={"csrf_token": csrf, "password": "wrong password", "code": mfa.code_at(secret, T0 + 120)},
    )
    assert r.status_code == 422 and 'data-testid="error-password"' in r.text
    r = client.post(
        "/profile/2fa/disable",
        data={"csrf_token": csrf, "password": PASSWORD, "code": mfa.code_at(secret, T0 + 120)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/profile"
    assert 'data-testid="mfa-status">Off<' in client.get("/profile").text
    assert connection.execute(select(UserTotp.user_id).where(UserTotp.user_id == uid)).first() is None


def test_a_role_that_requires_two_factor_enrols_from_the_page_and_cannot_turn_it_off(
    client: TestClient, factory: Factory, connection: Connection
) -> None:
    factory.user("team_lead", factory.team(), username="mfa.lead")
    uid = connection.execute(select(User.id).where(User.username == "mfa.lead")).scalar_one()
    connection.execute(
        insert(RoleMfaRequirement).values(role="team_lead", required=True, updated_at=utcnow())
    )
    # Logged in with a session limited to enrolment: the profile page says what to do, in Chinese.
    csrf = login(client, factory, "mfa.lead", language="zh-CN")
    profile = client.get("/profile").text
    assert "您的角色要求使用双重身份验证。请在下方设置身份验证器应用，然后重新登录。" in profile
    r = client.post("/profile/2fa/enrol", data={"csrf_token": csrf})
    assert "扫描此二维码" in r.text
    secret = _secret(r.text)
    r = client.post("/profile/2fa/confirm", data={"csrf_token": csrf, "code": mfa.code_at(secret, T0)})
    assert r.status_code == 200 and "请立即保存这些恢复码" in r.text
    assert "请使用密码和应用中的验证码重新登录。" in r.text and 'href="/login"' in r.text

    data = {"username": "mfa.lead", "password": PASSWORD, "otp": mfa.code_at(secret, T0 + 30)}
    assert client.post("/login", data=data, follow_redirects=False).status_code == 303
    profile = client.get("/profile").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', profile).group(1)  # type: ignore[union-attr]
    assert "您的角色要求使用双重身份验证，无法关闭。" in profile
    assert 'action="/profile/2fa/disable"' not in profile
    r = client.post(
        "/profile/2fa/disable",
        data={"csrf_token": csrf, "password": PASSWORD, "code": mfa.code_at(secret, T0 + 60)},
    )
    assert r.status_code == 409
    assert connection.execute(select(UserTotp.user_id).where(UserTotp.user_id == uid)).scalar_one() == uid
