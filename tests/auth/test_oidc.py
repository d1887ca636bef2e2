"""Single sign-on against a mock identity provider that speaks the real protocol.

The provider is a small Starlette app (discovery, JWKS, authorize, token) that signs real RS256
ID tokens and checks PKCE; Rapport reaches it through an httpx client bound to the app.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from rapport.app import create_app
from rapport.auth import cookies
from rapport.config import Settings
from rapport.db import Database
from rapport.models import AuditEvent, OidcIdentity, User
from tests.factories import Factory

ISSUER = "https://idp.test"
CLIENT_ID = "rapport-crm"
CLIENT_SECRET = "idp-client-secret-123"
REDIRECT = "https://crm.test/api/v1/auth/oidc/callback"


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class MockIdP:
    """Test knobs change what the next token looks like."""

    key: rsa.RSAPrivateKey = field(default_factory=_key)
    kid: str = "key-1"
    sign_with: rsa.RSAPrivateKey | None = None  # another key: bad signature
    audience: str = CLIENT_ID
    lifetime: int = 300  # negative: already expired
    nonce_override: str | None = None
    subject: str = "idp-user-1"
    email: str = "li.lei@example.com"
    email_verified: bool = True
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def discovery(request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )

        async def jwks(request: Request) -> Response:
            public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            return JSONResponse({"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

        async def authorize(request: Request) -> Response:
            q = request.query_params
            assert q["client_id"] == CLIENT_ID and q["response_type"] == "code"
            assert q["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "nonce": q["nonce"],
                "challenge": q["code_challenge"],
                "redirect_uri": q["redirect_uri"],
            }
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

        async def token(request: Request) -> Response:
            form = dict(await request.form())
            self.token_requests.append({k: str(v) for k, v in form.items()})
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(str(form.get("code")), None)
            if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
            if challenge.decode() != grant["challenge"]:
                return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "sub": self.subject,
                "aud": self.audience,
                "iat": now,
                "exp": now + self.lifetime,
                "nonce": self.nonce_override or grant["nonce"],
                "email": self.email,
                "email_verified": self.email_verified,
            }
            id_token = jwt.encode(
                claims, self.sign_with or self.key, algorithm="RS256", headers={"kid": self.kid}
            )
            return JSONResponse({"access_token": "at", "token_type": "Bearer", "id_token": id_token})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture
def idp(idp_key: rsa.RSAPrivateKey) -> MockIdP:
    return MockIdP(key=idp_key)


@pytest.fixture
def sso_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "oidc_issuer": ISSUER,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_redirect_uri": REDIRECT,
        }
    )


@pytest.fixture
def sso_app(sso_settings: Settings, database: Database, idp: MockIdP) -> FastAPI:
    app = create_app(sso_settings, database)
    app.state.oidc_http = TestClient(idp.app(), base_url=ISSUER)
    return app


@pytest.fixture
def browser(sso_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(sso_app, base_url="https://crm.test", raise_server_exceptions=False) as c:
        yield c


def sso(browser: TestClient, idp: MockIdP) -> Any:
    """Run the browser's whole round trip; returns Rapport's answer at the callback."""
    start = browser.get("/api/v1/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302, start.text
    location = start.headers["location"]
    assert location.startswith(f"{ISSUER}/authorize?")
    at_idp = TestClient(idp.app(), base_url=ISSUER).get(location, follow_redirects=False)
    back = at_idp.headers["location"]
    assert back.startswith(REDIRECT + "?")
    return browser.get(back.removeprefix("https://crm.test"), follow_redirects=False)


def test_authorization_request_uses_pkce_state_and_nonce(browser: TestClient) -> None:
    r = browser.get("/api/v1/auth/oidc/login", follow_redirects=False)
    q = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
    assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID and q["redirect_uri"] == REDIRECT
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32 and q["state"] != q["nonce"]
    assert q["scope"] == "openid email profile" and "prompt" not in q
    again = browser.get("/api/v1/auth/oidc/login?prompt=login", follow_redirects=False)
    assert parse_qs(urlsplit(again.headers["location"]).query)["prompt"] == ["login"]
    assert browser.get("/api/v1/auth/oidc/login?prompt=evil", follow_redirects=False).status_code == 422
    cookie = r.headers["set-cookie"]
    assert "rapport_oidc=" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=lax" in cookie and "Path=/api/v1/auth/oidc" in cookie


def test_known_email_logs_in_links_the_subject_and_sets_a_session(
    browser: TestClient, idp: MockIdP, factory: Factory, connection: Connection
) -> None:
    user = factory.user("sales_rep")
    connection.execute(User.__table__.update().where(User.id == user).values(email="Li.Lei@example.com"))
    r = sso(browser, idp)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == "sales_rep" and len(body["csrf_token"]) == 64
    # The verifier reached the token endpoint and matched the challenge (the IdP checks).
    assert len(idp.token_requests[-1]["code_verifier"]) >= 43
    link = connection.execute(select(OidcIdentity.user_id, OidcIdentity.subject)).one()
    assert tuple(link) == (user, "idp-user-1")
    me = browser.get("/api/v1/auth/me")
    assert me.status_code == 200 and me.json()["id"] == user
    # Next time the subject alone finds the account, even if the email changed at the IdP.
    idp.email = "someone.else@example.com"
    assert sso(browser, idp).status_code == 200


def _refused(r: Any, slug: str, detail_part: str) -> None:
    assert r.status_code in (401, 403), r.text
    problem = r.json()
    assert problem["type"].endswith("/" + slug), problem
    assert detail_part in problem["detail"], problem
    assert cookies.SESSION_COOKIE not in r.cookies


@pytest.fixture
def linked_user(factory: Factory, connection: Connection) -> int:
    user = factory.user("sales_rep")
    connection.execute(User.__table__.update().where(User.id == user).values(email="li.lei@example.com"))
    return user


def test_bad_signature_is_refused(browser: TestClient, idp: MockIdP, linked_user: int) -> None:
    idp.sign_with = _key()
    _refused(sso(browser, idp), "sso-failed", "signature is invalid")


def test_wrong_audience_is_refused(browser: TestClient, idp: MockIdP, linked_user: int) -> None:
    idp.audience = "another-client"
    _refused(sso(browser, idp), "sso-failed", "another client")


def test_expired_token_is_refused(browser: TestClient, idp: MockIdP, linked_user: int) -> None:
    idp.lifetime = -600  # beyond the 60 s leeway
    _refused(sso(browser, idp), "sso-failed", "expired")


def test_wrong_nonce_is_refused(browser: TestClient, idp: MockIdP, linked_user: int) -> None:
    idp.nonce_override = "nonce-of-another-login"
    _refused(sso(browser, idp), "sso-failed", "nonce mismatch")


def test_unknown_user_is_refused_and_audited(
    browser: TestClient, idp: MockIdP, connection: Connection
) -> None:
    idp.email = "nobody@example.com"
    _refused(sso(browser, idp), "sso-unknown-user", "no Rapport account")
    assert connection.execute(select(OidcIdentity.id)).first() is None
    events = connection.execute(
        select(AuditEvent.outcome, AuditEvent.details).where(AuditEvent.action == "login")
    ).all()
    assert [(e.outcome, e.details["reason"]) for e in events] == [("denied", "sso-unknown-user")]


def test_unverified_email_does_not_link(browser: TestClient, idp: MockIdP, linked_user: int) -> None:
    idp.email_verified = False
    _refused(sso(browser, idp), "sso-unknown-user", "no Rapport account")


def test_auto_create_only_when_configured(
    sso_settings: Settings, database: Database, idp: MockIdP, connection: Connection
) -> None:
    app = create_app(sso_settings.model_copy(update={"oidc_auto_create_role": "service_rep"}), database)
    app.state.oidc_http = TestClient(idp.app(), base_url=ISSUER)
    idp.email = "new.person@example.com"
    with TestClient(app, base_url="https://crm.test", raise_server_exceptions=False) as c:
        r = sso(c, idp)
    assert r.status_code == 200, r.text
    created = connection.execute(
        select(User.username, User.role, User.password_hash).where(User.email == "new.person@example.com")
    ).one()
    assert tuple(created) == ("new.person@example.com", "service_rep", None)


def test_state_mismatch_and_missing_cookie_are_refused(browser: TestClient, idp: MockIdP) -> None:
    browser.get("/api/v1/auth/oidc/login", follow_redirects=False)
    r = browser.get("/api/v1/auth/oidc/callback?code=x&state=forged-state")
    _refused(r, "sso-failed", "state mismatch")
    browser.cookies.clear()
    r = browser.get("/api/v1/auth/oidc/callback?code=x&state=forged-state")
    _refused(r, "sso-failed", "no login in progress")


def test_tampered_state_cookie_is_refused(browser: TestClient, idp: MockIdP) -> None:
    browser.get("/api/v1/auth/oidc/login", follow_redirects=False)
    value = browser.cookies.get("rapport_oidc")
    assert value
    body, _, sig = value.partition(".")
    browser.cookies.set("rapport_oidc", body + "." + sig[::-1], domain="crm.test", path="/api/v1/auth/oidc")
    r = browser.get("/api/v1/auth/oidc/callback?code=x&state=x")
    _refused(r, "sso-failed", "tampered")


def test_not_configured_answers_404_problem(client: TestClient) -> None:
    r = client.get("/api/v1/auth/oidc/login", follow_redirects=False)
    assert r.status_code == 404
    assert r.json()["type"].endswith("/sso-not-configured")


def test_disabled_user_cannot_sign_in(
    browser: TestClient, idp: MockIdP, linked_user: int, connection: Connection
) -> None:
    connection.execute(User.__table__.update().where(User.id == linked_user).values(is_active=False))
    _refused(sso(browser, idp), "sso-unknown-user", "disabled")


def test_expiry_is_checked_against_now(browser: TestClient, idp: MockIdP, linked_user: int) -> None:
    # Inside the leeway an ID token whose exp just passed is still accepted (clock skew).
    idp.lifetime = -30
    assert sso(browser, idp).status_code == 200
