"""Login, token refresh and revocation, API keys, and resolving a bearer secret to a caller."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.audit.chain import PendingEvent
from rapport.auth import mfa
from rapport.config import Settings
from rapport.db import record_audit
from rapport.errors import Forbidden, InvalidInput, NotAuthenticated, RateLimited, invalid_field
from rapport.models import ApiKey, AuthToken, User
from rapport.models.base import utcnow
from rapport.security.passwords import hash_password, needs_rehash, policy_problems, verify_password
from rapport.security.ratelimit import LoginThrottle
from rapport.security.tokens import (
    ACCESS_PREFIX,
    API_KEY_PREFIX,
    REFRESH_PREFIX,
    digest,
    new_secret,
)


class RefreshReused(NotAuthenticated):
    """A spent refresh token came back: its family is revoked, and that revocation must be kept."""


@dataclass(slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    user_id: int
    role: str
    # "mfa_enrol": the role requires 2FA and the person has not enrolled; the tokens open only
    # the enrolment routes.
    restriction: str | None = None


def _audit(
    session: Session,
    action: str,
    outcome: str,
    user_id: int | None,
    ip: str | None,
    request_id: str | None,
    **details: str,
) -> None:
    record_audit(
        session,
        PendingEvent(
            action=action,
            resource="session",
            record_id=None if user_id is None else str(user_id),
            outcome=outcome,
            actor_id=user_id,
            actor_kind="user" if user_id else "anonymous",
            ip=ip,
            request_id=request_id,
            details=dict(details),
        ),
    )


def _issue(
    session: Session,
    settings: Settings,
    user_id: int,
    ip: str | None,
    family: str | None = None,
    restriction: str | None = None,
) -> tuple[str, str, int]:
    now = utcnow()
    family = family or secrets.token_hex(8)
    access, refresh = new_secret(ACCESS_PREFIX), new_secret(REFRESH_PREFIX)
    ttl = settings.access_token_minutes * 60
    session.execute(
        insert(AuthToken),
        [
            {
                "token_hash": digest(access),
                "kind": "access",
                "user_id": user_id,
                "family": family,
                "created_at": now,
                "expires_at": now + dt.timedelta(seconds=ttl),
                "ip": ip,
                "restriction": restriction,
            },
            {
                "token_hash": digest(refresh),
                "kind": "refresh",
                "user_id": user_id,
                "family": family,
                "created_at": now,
                "expires_at": now + dt.timedelta(days=settings.refresh_token_days),
                "ip": ip,
                "restriction": restriction,
            },
        ],
    )
    return access, refresh, ttl


def login(
    session: Session,
    settings: Settings,
    throttle: LoginThrottle,
    username: str,
    password: str,
    ip: str | None,
    request_id: str | None,
    otp: str | None = None,
) -> IssuedTokens:
    user_key, ip_key = f"user:{username.lower()}", f"ip:{ip}"
    wait = throttle.retry_after(user_key, ip_key)
    if wait:
        _audit(session, "login", "denied", None, ip, request_id, reason="rate-limited")
        raise RateLimited(
            f"too many failed logins; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    # No username holds NUL, and PostgreSQL cannot even compare one: skip the lookup, not a 500.
    user = (
        None
        if "\x00" in username
        else session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    )
    if user is None or not verify_password(user.password_hash, password) or not user.is_active:
        throttle.failed(user_key, ip_key)
        _audit(
            session,
            "login",
            "denied",
            user.id if user else None,
            ip,
            request_id,
            reason="bad-credentials",
        )
        raise NotAuthenticated("wrong username or password, or the account is disabled")
    restriction = None
    if mfa.enrolled(session, user.id):
        if not otp:
            # Not a failure: the client asks for the code and sends both again.
            _audit(session, "login", "denied", user.id, ip, request_id, reason="mfa-required")
            raise mfa.MfaRequired(
                "this account uses two-factor authentication: send the 6-digit code from the "
                "authenticator app (or a recovery code) in the 'otp' field with the password"
            )
        method = mfa.verify_second_factor(session, user.id, otp, settings.resolved_secret_key())
        if method is None:
            throttle.failed(user_key, ip_key)
            _audit(session, "login", "denied", user.id, ip, request_id, reason="bad-second-factor")
            raise mfa.MfaInvalid("wrong, expired or already used second-factor code")
        if method == "recovery":
            _audit(session, "recovery_code_used", "ok", user.id, ip, request_id)
    elif mfa.role_requires_mfa(session, user.role):
        restriction = mfa.RESTRICTION_ENROL
    throttle.succeeded(user_key)
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    access, refresh, ttl = _issue(session, settings, user.id, ip, restriction=restriction)
    _audit(
        session,
        "login",
        "ok",
        user.id,
        ip,
        request_id,
        **({"restriction": restriction} if restriction else {}),
    )
    return IssuedTokens(access, refresh, ttl, user.id, user.role, restriction)


def login_user(
    session: Session, settings: Settings, user: User, ip: str | None, request_id: str | None, method: str
) -> IssuedTokens:
    """Issue tokens to a person authenticated elsewhere (single sign-on)."""
    user.last_login_at = utcnow()
    access, refresh, ttl = _issue(session, settings, user.id, ip)
    _audit(session, "login", "ok", user.id, ip, request_id, method=method)
    return IssuedTokens(access, refresh, ttl, user.id, user.role)


def refresh(
    session: Session, settings: Settings, refresh_token: str, ip: str | None, request_id: str | None
) -> IssuedTokens:
    """Rotate a refresh token. Re-use of a spent one revokes its whole family (likely theft)."""
    row = session.execute(
        select(AuthToken, User)
        .join(User, User.id == AuthToken.user_id)
        .where(AuthToken.token_hash == digest(refresh_token), AuthToken.kind == "refresh")
    ).first()
    now = utcnow()
    if row is None:
        raise NotAuthenticated("unknown refresh token")
    token, user = row
    if token.revoked_at is not None:
        revoke_family(session, token.family)
        _audit(session, "refresh", "denied", user.id, ip, request_id, reason="reused")
        raise RefreshReused("refresh token already used or revoked; log in again")
    if token.expires_at <= now or not user.is_active:
        _audit(session, "refresh", "denied", user.id, ip, request_id, reason="expired-or-disabled")
        raise NotAuthenticated("refresh token expired or account disabled; log in again")
    # Spend the token only if nobody spent it since we read it: of two concurrent refreshes with
    # one token, exactly one wins and the other is treated as re-use.
    spent = session.execute(
        update(AuthToken)
        .where(AuthToken.id == token.id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if spent != 1:
        revoke_family(session, token.family)
        _audit(session, "refresh", "denied", user.id, ip, request_id, reason="reused")
        raise RefreshReused("refresh token already used or revoked; log in again")
    access, new_refresh, ttl = _issue(
        session, settings, user.id, ip, family=token.family, restriction=token.restriction
    )
    _audit(session, "refresh", "ok", user.id, ip, request_id)
    return IssuedTokens(access, new_refresh, ttl, user.id, user.role, token.restriction)


def prune_tokens(session: Session, keep: dt.timedelta) -> int:
    """Delete tokens that expired or were revoked more than ``keep`` ago; returns the count."""
    cutoff = utcnow() - keep
    done = session.execute(
        delete(AuthToken).where(
            (AuthToken.expires_at < cutoff)
            | (AuthToken.revoked_at.is_not(None) & (AuthToken.revoked_at < cutoff))
        )
    ).rowcount  # type: ignore[attr-defined]
    return int(done)


def revoke_family(session: Session, family: str) -> None:
    session.execute(
        update(AuthToken)
        .where(AuthToken.family == family, AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def logout(session: Session, principal: Principal) -> None:
    if principal.token_id is None:
        return
    family = session.execute(select(AuthToken.family).where(AuthToken.id == principal.token_id)).scalar_one()
    revoke_family(session, family)
    _audit(session, "logout", "ok", principal.user_id, principal.ip, principal.request_id)


def revoke_user(session: Session, user_id: int) -> None:
    """Disable takes effect on the next request: every token and key of the user is revoked."""
    now = utcnow()
    session.execute(
        update(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    session.execute(
        update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )


_TOKEN_LOOKUP = select(
    AuthToken.id,
    AuthToken.expires_at,
    AuthToken.revoked_at,
    AuthToken.restriction,
    User.id.label("uid"),
    User.username,
    User.role,
    User.team_id,
    User.is_active,
    User.preferred_language,
).join(User, User.id == AuthToken.user_id)
# Built once: constructing a statement costs more than running it on the hot path.
_ACCESS_BY_DIGEST = _TOKEN_LOOKUP.where(
    AuthToken.token_hash == bindparam("digest"), AuthToken.kind == "access"
)

_KEY_LOOKUP = select(
    ApiKey.id,
    ApiKey.expires_at,
    ApiKey.revoked_at,
    ApiKey.scopes,
    User.id.label("uid"),
    User.username,
    User.role,
    User.team_id,
    User.is_active,
    User.preferred_language,
).join(User, User.id == ApiKey.user_id)
_KEY_BY_DIGEST = _KEY_LOOKUP.where(ApiKey.key_hash == bindparam("digest"))


def resolve(session: Session, secret: str, *, ip: str | None, request_id: str | None) -> Principal:
    now = utcnow()
    row: Any
    restriction = None
    if secret.startswith(ACCESS_PREFIX):
        row = session.connection().execute(_ACCESS_BY_DIGEST, {"digest": digest(secret)}).first()
        kind, scopes = "user", None
    elif secret.startswith(API_KEY_PREFIX):
        row = session.connection().execute(_KEY_BY_DIGEST, {"digest": digest(secret)}).first()
        kind = "api_key"
        scopes = frozenset(row.scopes) if row is not None else None
    else:
        raise NotAuthenticated("unrecognised credentials")
    if row is None or row.revoked_at is not None or not row.is_active:
        raise NotAuthenticated("token revoked or unknown; log in again")
    if row.expires_at is not None and row.expires_at <= now:
        raise NotAuthenticated("token expired; refresh it or log in again")
    if kind == "user":
        restriction = row.restriction
    return Principal(
        user_id=row.uid,
        username=row.username,
        role=Role(row.role),
        team_id=row.team_id,
        kind=kind,
        scopes=scopes,
        token_id=row.id if kind == "user" else None,
        ip=ip,
        request_id=request_id,
        language=row.preferred_language,
        extra={"restriction": restriction} if restriction else {},
        api_key_id=row.id if kind == "api_key" else None,
    )


def check_password_policy(password: str, username: str | None) -> None:
    problems = policy_problems(password, username)
    if problems:
        raise InvalidInput(
            "password " + "; ".join(problems),
            errors=[
                {
                    "loc": ["body", "password"],
                    "field": "password",
                    "message": p,
                    "type": "password_policy",
                }
                for p in problems
            ],
        )


def create_api_key(
    session: Session, user_id: int, name: str, scopes: list[str], expires_at: dt.datetime | None
) -> tuple[int, str]:
    secret = new_secret(API_KEY_PREFIX)
    key_id = session.execute(
        insert(ApiKey)
        .values(
            name=name,
            prefix=secret[:12],
            key_hash=digest(secret),
            user_id=user_id,
            scopes=sorted(set(scopes)),
            expires_at=expires_at,
            created_at=utcnow(),
            updated_at=utcnow(),
            version=1,
        )
        .returning(ApiKey.id)
    ).scalar_one()
    return key_id, secret


def _audit_user_change(session: Session, principal: Principal, user_id: int, outcome: str = "ok") -> None:
    record_audit(
        session,
        PendingEvent(
            action="password_change",
            resource="user",
            record_id=str(user_id),
            outcome=outcome,
            actor_id=principal.user_id,
            actor_kind=principal.kind,
            ip=principal.ip,
            request_id=principal.request_id,
        ),
    )


def change_password(
    session: Session, throttle: LoginThrottle, principal: Principal, current_password: str, new_password: str
) -> None:
    """Change the caller's own password; signs out every session and revokes API keys.

    Used by ``POST /auth/password`` and the workspace's profile page.
    """
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("passwords are changed by their person, not through an API key")
    key = f"password:{principal.user_id}"
    wait = throttle.retry_after(key)
    if wait:
        _audit_user_change(session, principal, principal.user_id, outcome="denied")
        raise RateLimited(
            f"too many wrong current passwords; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    user = session.execute(select(User).where(User.id == principal.user_id)).scalar_one()
    if not verify_password(user.password_hash, current_password):
        # Kept after the rollback: guesses made with a stolen token must show in the chain, and
        # they count against the same limit as failed logins.
        throttle.failed(key)
        _audit_user_change(session, principal, user.id, outcome="denied")
        raise invalid_field("current_password", "does not match", "password")
    check_password_policy(new_password, user.username)
    user.password_hash = hash_password(new_password)
    user.version += 1
    revoke_user(session, user.id)
    _audit_user_change(session, principal, user.id)


def set_own_language(session: Session, principal: Principal, language: str) -> None:
    """The caller's own language preference (self-service, like the password)."""
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("only a person has a language preference")
    session.execute(
        update(User)
        .where(User.id == principal.user_id)
        .values(preferred_language=language, version=User.version + 1)
    )
    record_audit(
        session,
        PendingEvent(
            action="update",
            resource="user",
            record_id=str(principal.user_id),
            outcome="ok",
            actor_id=principal.user_id,
            actor_kind=principal.kind,
            ip=principal.ip,
            request_id=principal.request_id,
            details={"fields": ["preferred_language"]},
        ),
    )
