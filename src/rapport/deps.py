"""Typed dependencies shared by every endpoint: the unit of work, the caller, the data-access layer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.auth import service as auth_service
from rapport.db import Database
from rapport.errors import NotAuthenticated
from rapport.pagination import CursorCodec

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.database
    with database.unit(write=request.method not in _SAFE) as session:
        yield session


# scope="function": commit (and its possible failure) happens before the response is sent.
DbSession = Annotated[Session, Depends(get_db, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v1/auth/token or an API key")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def get_principal(
    request: Request,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = credentials.credentials if credentials else None
    if not token:
        raise NotAuthenticated("send 'Authorization: Bearer <token>'")
    principal = auth_service.resolve(
        db, token, ip=client_ip(request), request_id=getattr(request.state, "request_id", None)
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_records(request: Request, db: DbSession, principal: CurrentPrincipal) -> Records:
    codec: CursorCodec = request.app.state.cursors
    return Records(db, principal, codec)


Recs = Annotated[Records, Depends(get_records)]
