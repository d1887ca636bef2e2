"""OpenID Connect single sign-on: authorization-code flow with PKCE, state and nonce.

The browser is sent to the provider with a fresh ``state`` (CSRF on the callback), ``nonce``
(binds the ID token to this login) and PKCE ``code_challenge`` (S256). Those three live in a
short-lived, HMAC-signed, HttpOnly cookie scoped to the callback path, so the server keeps no
login state. The callback checks the state, exchanges the code (with the verifier and the client
secret) and validates the ID token with PyJWT: signature against the provider's JWKS (only
asymmetric algorithms), ``iss``, ``aud`` (and ``azp``), ``exp``/``iat``, and ``nonce``.

The subject is mapped to an existing staff account: first by a stored (issuer, subject) link,
then once by a verified email address that belongs to exactly one active account (the link is
stored then). Unknown people are refused unless ``RAPPORT_OIDC_AUTO_CREATE_ROLE`` names a role.

The provider is configured by the operator and is often internal, so its URLs are not subject to
the SSRF rules for user-supplied URLs (:mod:`rapport.security.outbound`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from rapport.config import Settings
from rapport.errors import Forbidden, NotAuthenticated, RapportError
from rapport.models import OidcIdentity, User
from rapport.models.base import utcnow

STATE_COOKIE = "rapport_oidc"
STATE_COOKIE_PATH = "/api/v1/auth/oidc"
STATE_TTL_SECONDS = 600
METADATA_TTL_SECONDS = 3600
LEEWAY_SECONDS = 60
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


class SsoNotConfigured(RapportError):
    status, slug, title = 404, "sso-not-configured", "Single sign-on is not configured"


class SsoFailed(NotAuthenticated):
    slug, title = "sso-failed", "Single sign-on failed"


class SsoUnknownUser(Forbidden):
    slug, title = "sso-unknown-user", "No account for this identity"


@dataclass(frozen=True, slots=True)
class LoginState:
    state: str
    nonce: str
    verifier: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: bytes, server_secret: str) -> str:
    return _b64(hmac.new(server_secret.encode(), b"oidc-state:" + payload, hashlib.sha256).digest())


def pack_state(st: LoginState, server_secret: str) -> str:
    payload = json.dumps(
        {"s": st.state, "n": st.nonce, "v": st.verifier, "e": st.expires}, separators=(",", ":")
    ).encode()
    return _b64(payload) + "." + _sign(payload, server_secret)


def unpack_state(cookie: str | None, server_secret: str, now: float) -> LoginState:
    if not cookie or "." not in cookie:
        raise SsoFailed("no login in progress in this browser; start again at /auth/oidc/login")
    body, _, signature = cookie.partition(".")
    try:
        payload = _unb64(body)
    except ValueError:
        raise SsoFailed("login state cookie is malformed") from None
    if not hmac.compare_digest(signature, _sign(payload, server_secret)):
        raise SsoFailed("login state cookie was tampered with")
    data = json.loads(payload)
    st = LoginState(data["s"], data["n"], data["v"], int(data["e"]))
    if st.expires < now:
        raise SsoFailed("the login took too long; start again")
    return st


def new_login_state(now: float) -> LoginState:
    return LoginState(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),  # 64 characters, within RFC 7636's 43-128
        expires=int(now) + STATE_TTL_SECONDS,
    )


def code_challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


class OidcClient:
    """Talks to one provider; caches its discovery document and keys for an hour."""

    def __init__(self, settings: Settings, http: httpx.Client | None = None) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_uri):
            raise SsoNotConfigured(
                "set RAPPORT_OIDC_ISSUER, RAPPORT_OIDC_CLIENT_ID and RAPPORT_OIDC_REDIRECT_URI"
            )
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.redirect_uri = settings.oidc_redirect_uri
        self.http = http or httpx.Client(timeout=10.0, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: jwt.PyJWKSet | None = None

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            r = self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise SsoFailed(f"identity provider unreachable ({type(exc).__name__})") from None
        if r.status_code != 200:
            raise SsoFailed(f"identity provider answered {r.status_code} for {url}")
        data = r.json()
        if not isinstance(data, dict):
            raise SsoFailed("identity provider sent an unexpected document")
        return data

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_SECONDS:
            data = self._get_json(self.issuer + "/.well-known/openid-configuration")
            if str(data.get("issuer", "")).rstrip("/") != self.issuer:
                raise SsoFailed("the discovery document names another issuer")
            self._metadata, self._metadata_at, self._jwks = data, time.monotonic(), None
        return self._metadata

    def _keys(self, refresh: bool = False) -> jwt.PyJWKSet:
        if self._jwks is None or refresh:
            self._jwks = jwt.PyJWKSet.from_dict(self._get_json(self.metadata()["jwks_uri"]))
        return self._jwks

    def _key_for(self, kid: str | None) -> jwt.PyJWK:
        for refresh in (False, True):  # an unknown kid may be a rotated key: fetch the set once more
            keys = self._keys(refresh)
            matches = [k for k in keys.keys if kid is None or k.key_id == kid]
            if matches:
                return matches[0]
        raise SsoFailed("the ID token was signed with a key the provider does not publish")

    def authorization_url(self, st: LoginState, prompt: str | None = None) -> str:
        extra = {"prompt": prompt} if prompt else {}
        query = urlencode(
            {
                **extra,
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.settings.oidc_scopes,
                "state": st.state,
                "nonce": st.nonce,
                "code_challenge": code_challenge(st.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{self.metadata()['authorization_endpoint']}?{query}"

    def exchange(self, code: str, st: LoginState) -> str:
        """Trade the code for tokens; returns the raw ID token."""
        auth = (self.client_id, self.settings.oidc_client_secret or "")
        try:
            r = self.http.post(
                self.metadata()["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": st.verifier,
                },
                auth=auth,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise SsoFailed(f"identity provider unreachable ({type(exc).__name__})") from None
        if r.status_code != 200:
            raise SsoFailed(f"the identity provider refused the code ({r.status_code})")
        id_token = r.json().get("id_token")
        if not isinstance(id_token, str):
            raise SsoFailed("the identity provider sent no ID token")
        return id_token

    def validate(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise SsoFailed("the ID token is malformed") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise SsoFailed(f"ID token algorithm {alg!r} is not accepted")
        key = self._key_for(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[alg],
                audience=self.client_id,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise SsoFailed("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise SsoFailed("the ID token was issued for another client") from None
        except jwt.InvalidIssuerError:
            raise SsoFailed("the ID token was issued by another provider") from None
        except jwt.InvalidSignatureError:
            raise SsoFailed("the ID token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise SsoFailed(f"the ID token is invalid ({exc})") from None
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise SsoFailed("the ID token's authorised party is another client")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise SsoFailed("the ID token does not belong to this login (nonce mismatch)")
        return claims


def find_user(session: Session, settings: Settings, issuer: str, claims: dict[str, Any]) -> User:
    """The staff account for these claims; links by verified email once; refuses strangers."""
    subject = str(claims["sub"])
    user = session.execute(
        select(User)
        .join(OidcIdentity, OidcIdentity.user_id == User.id)
        .where(OidcIdentity.issuer == issuer, OidcIdentity.subject == subject)
    ).scalar_one_or_none()
    if user is None:
        email = claims.get("email")
        if isinstance(email, str) and claims.get("email_verified") is True:
            found = (
                session.execute(select(User).where(func.lower(User.email) == email.strip().lower()))
                .scalars()
                .all()
            )
            if len(found) == 1:
                user = found[0]
        if user is None and settings.oidc_auto_create_role:
            user = _create(session, settings.oidc_auto_create_role, claims)
        if user is None:
            raise SsoUnknownUser(
                "no Rapport account matches this single sign-on identity; ask an administrator"
            )
        session.execute(
            insert(OidcIdentity).values(user_id=user.id, issuer=issuer, subject=subject, created_at=utcnow())
        )
    if not user.is_active:
        raise SsoUnknownUser("this account is disabled")
    session.execute(
        update(OidcIdentity)
        .where(OidcIdentity.issuer == issuer, OidcIdentity.subject == subject)
        .values(last_login_at=utcnow())
    )
    return user


def _create(session: Session, role: str, claims: dict[str, Any]) -> User:
    from rapport.access.policy import Role

    base = str(claims.get("preferred_username") or claims.get("email") or f"sso-{claims['sub']}")[:56]
    username = base
    while session.execute(select(User.id).where(User.username == username)).first() is not None:
        username = f"{base}-{secrets.token_hex(3)}"
    now = utcnow()
    user = User(
        username=username,
        display_name=str(claims.get("name") or username)[:200],
        email=claims.get("email") if claims.get("email_verified") is True else None,
        password_hash=None,  # SSO only: password login is impossible
        role=Role(role).value,
        is_active=True,
        preferred_language="zh-CN",
        created_at=now,
        updated_at=now,
        version=1,
    )
    session.add(user)
    session.flush()
    return user
