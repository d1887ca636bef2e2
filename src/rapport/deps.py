"""Typed dependencies shared by every endpoint: the unit of work, the caller, the data-access layer."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.auth import cookies, mfa
from rapport.auth import service as auth_service
from rapport.db import Database
from rapport.errors import NotAuthenticated
from rapport.pagination import CursorCodec
from rapport.security.tokens import ACCESS_PREFIX

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

# Threads that start write units wait there for SQLite's write lock. They get their own tokens:
# drawn from the shared pool, enough waiters would take every worker thread and leave the lock
# holder none to run its endpoint or commit with, and no write would ever finish again.
# Leaving a unit (commit or rollback) has tokens of its own too: on PostgreSQL, writers whose
# endpoints wait on a row the holder locked (a dashboard rollup row shared by one owner's
# customers) hold their endpoint tokens until the holder commits, so a commit drawn from that
# pool would wait for them forever. A commit never waits on another request, so its pool drains.
_UNIT_THREADS = 40
_unit_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)


def _unit_limiter(stage: str = "enter") -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiters = _unit_limiters.setdefault(loop, {})
    limiter = limiters.get(stage)
    if limiter is None:
        limiter = limiters[stage] = anyio.CapacityLimiter(_UNIT_THREADS)
    return limiter


async def get_db(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work.

    Reads run on the event loop (cheap queries, no thread hop). Writes enter and leave their
    unit in worker threads because SQLite's single-writer lock may make them wait, and the event
    loop must never wait on a lock.
    """
    database: Database = request.app.state.database
    if request.method in _SAFE:
        async with database.read_unit() as session:
            yield session
        return
    unit = database.unit(write=True)
    session = await anyio.to_thread.run_sync(unit.__enter__, limiter=_unit_limiter())
    try:
        yield session
    except BaseException as exc:
        # Shielded: a cancelled request must still roll back and release the write lock.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                unit.__exit__, type(exc), exc, exc.__traceback__, limiter=_unit_limiter("exit")
            )
        raise
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(unit.__exit__, None, None, None, limiter=_unit_limiter("exit"))


# scope="function": commit (and its possible failure) happens before the response is sent.
DbSession = Annotated[Session, Depends(get_db, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/token or an API key")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


# A session limited to 2FA enrolment (its role requires 2FA) may call only these.
ENROLMENT_ROUTES = frozenset(
    {
        ("POST", "/api/v1/auth/2fa/enrol"),
        ("POST", "/api/v1/auth/2fa/confirm"),
        ("GET", "/api/v1/auth/2fa"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/logout"),
        ("DELETE", "/api/v1/auth/session"),
    }
)


async def get_principal(
    request: Request,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = credentials.credentials if credentials else None
    via_cookie = False
    if not token:
        token = request.cookies.get(cookies.SESSION_COOKIE)
        if token is None:
            raise NotAuthenticated("send 'Authorization: Bearer <token>' or log in with /auth/session")
        # Cookies carry session tokens only; an API key never rides on ambient credentials.
        if not token.startswith(ACCESS_PREFIX):
            raise NotAuthenticated("the session cookie does not hold a session token; log in again")
        via_cookie = True
    principal = auth_service.resolve(
        db, token, ip=client_ip(request), request_id=getattr(request.state, "request_id", None)
    )
    if via_cookie and request.method not in _SAFE:
        cookies.check_csrf(request, request.app.state.settings.resolved_secret_key(), token)
    if principal.extra.get("restriction") == mfa.RESTRICTION_ENROL:
        route = (request.method, request.url.path)
        if route not in ENROLMENT_ROUTES:
            raise mfa.MfaEnrolmentRequired(
                "your role requires two-factor authentication: enrol with POST /api/v1/auth/2fa/enrol "
                "and /auth/2fa/confirm, then log in again"
            )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_records(request: Request, db: DbSession, principal: CurrentPrincipal) -> Records:
    codec: CursorCodec = request.app.state.cursors
    return Records(db, principal, codec)


Recs = Annotated[Records, Depends(get_records)]
