"""Catalogue queries the business rules need beyond the data-access layer's record reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from rapport.access.specs import ORDER_LINE, PRODUCT

_P = PRODUCT.table


def sku_owner(conn: Connection, sku: str) -> int | None:
    """Id of the product holding ``sku`` (the unique index makes this one probe)."""
    return conn.execute(select(_P.c.id).where(_P.c.sku == sku)).scalar_one_or_none()


def in_order_lines(conn: Connection, product_id: int) -> bool:
    t = ORDER_LINE.table
    return conn.execute(select(t.c.id).where(t.c.product_id == product_id).limit(1)).first() is not None


def pricing(conn: Connection, ids: Iterable[int]) -> dict[int, Any]:
    """Price, cost, currency and status of the given products, for pricing an order server-side.

    Costs are read here whatever the caller's field masks: they feed totals the caller's own
    masks then hide, they are never returned as such.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(_P.c.id, _P.c.list_price, _P.c.unit_cost, _P.c.currency, _P.c.is_active).where(
            _P.c.id.in_(wanted)
        )
    )
    return {r.id: r for r in rows}
