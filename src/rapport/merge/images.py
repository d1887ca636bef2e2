"""JSON images of rows (dates as ISO text) and their sealing into the merge record."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from rapport.security.keyring import keyring_for

MERGE_TABLE = "customer_merge"


def encode_row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, (dt.datetime, dt.date)):
            out[k] = v.isoformat()
        elif isinstance(v, Decimal):
            out[k] = str(v)
        elif isinstance(v, bytes):
            raise TypeError(f"{k}: sealed bytes never enter a merge image")
        else:
            out[k] = v
    return out


def decode_row(table: Table, data: dict[str, Any]) -> dict[str, Any]:
    """Back to the column types of ``table`` (datetimes aware, dates as dates)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        col = table.c.get(k)
        if v is not None and col is not None and isinstance(v, str):
            kind = col.type.impl if isinstance(col.type, TypeDecorator) else col.type
            try:
                py = kind.python_type
            except NotImplementedError:
                py = str
            if py is dt.datetime:
                v = dt.datetime.fromisoformat(v)
            elif py is dt.date:
                v = dt.date.fromisoformat(v)
            elif py is Decimal:
                v = Decimal(v)
        out[k] = v
    return out


def seal(session: Session | Connection, column: str, merge_id: int, data: Any) -> bytes | None:
    if data is None:
        return None
    ring = keyring_for(session, for_write=True)
    return ring.seal(MERGE_TABLE, column, merge_id, orjson.dumps(data))


def unseal(session: Session | Connection, column: str, merge_id: int, blob: bytes | None) -> Any:
    if blob is None:
        return None
    raw = keyring_for(session).open(MERGE_TABLE, column, merge_id, blob)
    return None if raw is None else orjson.loads(raw)
