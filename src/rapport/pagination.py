"""Keyset (cursor) pagination: stable order on (sort column, id), opaque signed cursors."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Date, DateTime, Select, Table, and_, or_
from sqlalchemy.types import TypeDecorator

from rapport.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Sort:
    column: str
    descending: bool

    @classmethod
    def parse(cls, raw: str, allowed: tuple[str, ...]) -> Sort:
        desc = raw.startswith("-")
        name = raw[1:] if desc else raw
        if name not in allowed:
            choices = ", ".join(sorted({*allowed, *(f"-{a}" for a in allowed)}))
            raise InvalidInput(
                f"cannot sort by '{raw}'; choose one of: {choices}",
                errors=[
                    {
                        "loc": ["query", "sort"],
                        "field": "sort",
                        "message": "unknown sort key",
                        "type": "enum",
                    }
                ],
            )
        return cls(name, desc)

    @property
    def token(self) -> str:
        return ("-" if self.descending else "") + self.column


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(("cursor:" + secret).encode()).digest()

    def _sig(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:12]

    def encode(self, sort: Sort, value: Any, last_id: int, *, backwards: bool = False) -> str:
        """``backwards``: the cursor points at the page before the row (a "previous page" link)."""
        if isinstance(value, (dt.datetime, dt.date)):
            value = value.isoformat()
        payload = orjson.dumps([sort.token, value, last_id, 1] if backwards else [sort.token, value, last_id])
        return base64.urlsafe_b64encode(payload + self._sig(payload)).decode().rstrip("=")

    def decode(self, cursor: str, sort: Sort, table: Table) -> tuple[Any, int]:
        value, last_id, _ = self.decode_directed(cursor, sort, table)
        return value, last_id

    def decode_directed(self, cursor: str, sort: Sort, table: Table) -> tuple[Any, int, bool]:
        """(sort value, id, backwards) of a cursor made by :meth:`encode`."""

        def bad(why: str) -> InvalidInput:
            return InvalidInput(
                f"invalid cursor: {why}; use the next_cursor value from the previous page",
                errors=[
                    {
                        "loc": ["query", "cursor"],
                        "field": "cursor",
                        "message": why,
                        "type": "cursor",
                    }
                ],
            )

        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError):
            raise bad("not base64url") from None
        payload, sig = raw[:-12], raw[-12:]
        if len(raw) <= 12 or not hmac.compare_digest(sig, self._sig(payload)):
            raise bad("signature does not match")
        try:
            token, value, last_id, *direction = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError):
            raise bad("malformed") from None
        if token != sort.token:
            raise bad(f"cursor was made for sort '{token}', not '{sort.token}'")
        col_type = table.c[sort.column].type
        impl = col_type.impl if isinstance(col_type, TypeDecorator) else col_type
        if value is not None and isinstance(impl, DateTime):
            value = dt.datetime.fromisoformat(value)
        elif value is not None and isinstance(impl, Date):
            value = dt.date.fromisoformat(value)
        return value, int(last_id), direction == [1]


def keyset(stmt: Select[Any], table: Table, sort: Sort, after: tuple[Any, int] | None) -> Select[Any]:
    col, pk = table.c[sort.column], table.c.id
    if sort.column != "id" and col.nullable:
        return _keyset_nullable(stmt, col, pk, sort.descending, after)
    if after is not None:
        value, last_id = after
        cond: ColumnElement[bool]
        if sort.column == "id":
            cond = pk < last_id if sort.descending else pk > last_id
        elif sort.descending:
            cond = or_(col < value, and_(col == value, pk < last_id))
        else:
            cond = or_(col > value, and_(col == value, pk > last_id))
        stmt = stmt.where(cond)
    if sort.column == "id":
        return stmt.order_by(pk.desc() if sort.descending else pk.asc())
    if sort.descending:
        return stmt.order_by(col.desc(), pk.desc())
    return stmt.order_by(col.asc(), pk.asc())


def _keyset_nullable(
    stmt: Select[Any], col: Any, pk: Any, descending: bool, after: tuple[Any, int] | None
) -> Select[Any]:
    """NULLs sort last ascending and first descending on both databases (PostgreSQL's btree
    order, so its index still serves the scan); ``col > NULL`` is never true, so a cursor that
    stops on a NULL needs its own condition or the following pages would come back empty."""
    if after is not None:
        value, last_id = after
        cond: ColumnElement[bool]
        if descending and value is None:
            cond = or_(and_(col.is_(None), pk < last_id), col.is_not(None))
        elif descending:
            cond = or_(col < value, and_(col == value, pk < last_id))
        elif value is None:
            cond = and_(col.is_(None), pk > last_id)
        else:
            cond = or_(col > value, and_(col == value, pk > last_id), col.is_(None))
        stmt = stmt.where(cond)
    if descending:
        return stmt.order_by(col.desc().nulls_first(), pk.desc())
    return stmt.order_by(col.asc().nulls_last(), pk.asc())
