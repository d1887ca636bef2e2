"""HTTP conventions shared by every resource: JSON encoding, ETags, If-Match, idempotency."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from fastapi import Request
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from starlette.responses import Response

from rapport.access.principal import Principal
from rapport.errors import InvalidInput, PreconditionFailed, PreconditionRequired, invalid_field
from rapport.models.base import table_of, utcnow
from rapport.models.system import IdempotencyRecord
from rapport.security.keyring import keyring_for


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps(data: Any) -> bytes:
    return orjson.dumps(data, default=_default, option=orjson.OPT_UTC_Z)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def etag(record_id: int, version: int) -> str:
    return f'"{record_id}.{version}"'


def json_record(row: dict[str, Any], status_code: int = 200) -> JSON:
    headers = {}
    if "version" in row and "id" in row:
        headers["ETag"] = etag(row["id"], row["version"])
    return JSON(row, status_code=status_code, headers=headers)


def expected_version(request: Request, record_id: int) -> int:
    """Version named by If-Match; updates without one are refused (lost-update protection)."""
    header = request.headers.get("if-match")
    if not header:
        raise PreconditionRequired(
            "send If-Match with the ETag from your last read of this record (prevents lost updates)"
        )
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    for tag in candidates:
        ident, _, version = tag.strip('"').partition(".")
        if ident == str(record_id) and version.isdigit() and len(version) < 19:
            return int(version)
    raise PreconditionFailed(
        f"If-Match {header!r} does not match this record's current ETag; reload and try again"
    )


# -- idempotency -------------------------------------------------------------------------------

MAX_KEY_LENGTH = 255
IDEMPOTENCY_TTL = dt.timedelta(hours=24)


def prune_idempotency(session: Session, now: dt.datetime | None = None) -> int:
    """Forget every key older than IDEMPOTENCY_TTL; returns how many were removed."""
    table = table_of(IdempotencyRecord)
    cutoff = (now or utcnow()) - IDEMPOTENCY_TTL
    return int(session.execute(delete(table).where(table.c.created_at < cutoff)).rowcount)  # type: ignore[attr-defined]


def idempotent(
    session: Session,
    request: Request,
    principal: Principal,
    body: Any,
    produce: Callable[[], Response],
) -> Response:
    """Run ``produce`` once per Idempotency-Key; repeats get the first response back.

    The key row is inserted before the work in the same transaction, so concurrent duplicates
    wait on the unique index (PostgreSQL) or the write lock (SQLite) and then replay.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return produce()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise InvalidInput(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
            errors=[
                {
                    "loc": ["header", "Idempotency-Key"],
                    "field": "Idempotency-Key",
                    "message": "invalid",
                    "type": "header",
                }
            ],
        )
    raw = body.model_dump_json().encode() if hasattr(body, "model_dump_json") else dumps(body)
    body_hash = hashlib.sha256(request.method.encode() + request.url.path.encode() + raw).hexdigest()
    table = table_of(IdempotencyRecord)
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    owner = principal.owner_key
    # A key is remembered for IDEMPOTENCY_TTL; after that the same key starts a new request.
    session.execute(
        delete(table).where(
            table.c.owner == owner, table.c.key == key, table.c.created_at < utcnow() - IDEMPOTENCY_TTL
        )
    )
    claimed = session.execute(
        ins.values(
            owner=owner,
            key=key,
            method=request.method,
            path=request.url.path,
            body_hash=body_hash,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["owner", "key"])
        .returning(table.c.id)
    ).scalar_one_or_none()
    if claimed is None:
        prior = session.execute(
            select(
                table.c.id,
                table.c.body_hash,
                table.c.status_code,
                table.c.response_body,
                table.c.response_headers,
            ).where(table.c.owner == owner, table.c.key == key)
        ).one()
        if prior.body_hash != body_hash:
            raise invalid_field(
                "Idempotency-Key", "already used with a different request body", "idempotency", where="header"
            )
        headers = orjson.loads(prior.response_headers or "{}")
        headers["Idempotent-Replayed"] = "true"
        body_bytes = keyring_for(session).open(table.name, "response_body", prior.id, prior.response_body)
        return Response(
            body_bytes,
            status_code=prior.status_code,
            headers=headers,
            media_type="application/json",
        )
    response = produce()
    kept = {k: v for k, v in response.headers.items() if k.lower() in ("etag", "location")}
    session.execute(
        update(table)
        .where(table.c.id == claimed)
        .values(
            status_code=response.status_code,
            # Sealed like contact values: the response echoes the created person's record.
            response_body=keyring_for(session, for_write=True).seal(
                table.name, "response_body", claimed, bytes(response.body)
            ),
            response_headers=orjson.dumps(kept).decode(),
        )
    )
    return response
