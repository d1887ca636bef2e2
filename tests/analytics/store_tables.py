"""An in-memory DuckDB with the analytics store's own tables, and fillers for tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb

from rapport.analytics.store import ensure_schema


class Store:
    def __init__(self) -> None:
        self.con = duckdb.connect(":memory:")
        ensure_schema(self.con)
        self._line = 0

    def customers(self, rows: Iterable[tuple[int, str | None, str | None, bool | None]]) -> None:
        """(customer_id, region, preferred_channel, profiling_allowed)."""
        self.con.executemany(
            "INSERT INTO customers (customer_id, created_at, region, preferred_channel, profiling_allowed) "
            "VALUES (?, TIMESTAMP '2020-01-01', ?, ?, ?)",
            [list(r) for r in rows],
        )

    def products(self, rows: Iterable[tuple[int, str | None, float | None, bool]]) -> None:
        """(product_id, category, list_price, is_active)."""
        self.con.executemany(
            "INSERT INTO products VALUES (?, 'SKU' || ?, 'product', ?, ?, ?)",
            [[p, p, c, price, active] for p, c, price, active in rows],
        )

    def orders_bulk(self, rows: Sequence[tuple[int, int, dt.datetime, str, int]]) -> None:
        """Single-line orders in one statement: (order_id, customer_id, ordered_at, status, product_id)."""
        import pandas as pd

        frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "status", "product_id"])
        self.con.register("new_orders", frame)
        self.con.execute(
            "INSERT INTO orders SELECT order_id, customer_id, ordered_at, status, 'web', 'CNY', 10.0, NULL "
            "FROM new_orders"
        )
        self.con.execute(
            "INSERT INTO order_lines SELECT ? + row_number() OVER (ORDER BY order_id), order_id, "
            "product_id, 1.0, 10.0, 0.0, 10.0 FROM new_orders",
            [self._line],
        )
        self._line += len(frame)
        self.con.unregister("new_orders")

    def order(
        self,
        order_id: int,
        customer_id: int,
        at: dt.datetime,
        products: Sequence[int],
        *,
        status: str = "paid",
        total: float | None = None,
        currency: str = "CNY",
        quantities: Sequence[float] | None = None,
    ) -> None:
        amount = float(len(products) * 10) if total is None else total
        self.con.execute(
            "INSERT INTO orders VALUES (?, ?, ?, ?, 'web', ?, ?, NULL)",
            [order_id, customer_id, at, status, currency, amount],
        )
        lines: list[list[Any]] = []
        for n, product in enumerate(products):
            self._line += 1
            qty = 1.0 if quantities is None else quantities[n]
            lines.append([self._line, order_id, product, qty, 10.0, 0.0, 10.0 * qty])
        if lines:
            self.con.executemany("INSERT INTO order_lines VALUES (?, ?, ?, ?, ?, ?, ?)", lines)
