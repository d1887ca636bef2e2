"""The machine's limit for this benchmark: bare Starlette + sqlite3, no auth, no ORM, no audit.

Served next to Rapport in the same run so the two figures share the same machine and load tool.
"""

from __future__ import annotations

import os
import sqlite3
import threading

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DB_PATH = os.environ["RAW_DB_PATH"]
_local = threading.local()


def _conn() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB_PATH, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        _local.conn = conn
    return conn


def _customer(request: Request) -> Response:
    row = (
        _conn().execute("SELECT * FROM customer WHERE id = ?", (int(request.path_params["cid"]),)).fetchone()
    )
    if row is None:
        return Response(b'{"detail":"not found"}', status_code=404, media_type="application/json")
    return Response(orjson.dumps(dict(row)), media_type="application/json")


async def customer_async(request: Request) -> Response:
    """Query on the event loop: the fastest this stack can answer."""
    return _customer(request)


def customer_sync(request: Request) -> Response:
    """Query in Starlette's thread pool, the way a plain ``def`` endpoint runs."""
    return _customer(request)


app = Starlette(
    routes=[
        Route("/raw/async/customers/{cid:int}", customer_async),
        Route("/raw/sync/customers/{cid:int}", customer_sync),
    ]
)
