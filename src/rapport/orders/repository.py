"""Order numbers and order lines: the parts of the order aggregate written beside the order row."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, insert, select

from rapport.access.records import Records, Row
from rapport.access.specs import ORDER, ORDER_LINE


def number_taken(conn: Connection, number: str) -> bool:
    t = ORDER.table
    return conn.execute(select(t.c.id).where(t.c.order_number == number)).first() is not None


def new_number(conn: Connection, day: str) -> str:
    """SO-<yyyymmdd>-<8 hex>: readable on a phone call, and 4 billion per day before a retry."""
    while True:
        number = f"SO-{day}-{secrets.token_hex(4).upper()}"
        if not number_taken(conn, number):
            return number


def insert_lines(conn: Connection, order_id: int, lines: Iterable[dict[str, Any]]) -> None:
    conn.execute(insert(ORDER_LINE.table), [{**line, "order_id": order_id} for line in lines])


def lines_by_order(recs: Records, order_ids: list[int]) -> dict[int, list[Row]]:
    """Lines read under the caller's order_line grant, so its masks (unit_cost) apply."""
    t = ORDER_LINE.table
    out: dict[int, list[Row]] = defaultdict(list)
    if not order_ids:
        return out
    stmt = recs.select(ORDER_LINE).where(t.c.order_id.in_(order_ids)).order_by(t.c.order_id, t.c.id)
    for r in recs.conn.execute(stmt).mappings():
        out[r["order_id"]].append(dict(r))
    return out
