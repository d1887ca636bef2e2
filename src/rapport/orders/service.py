"""Orders: server-side pricing from the catalogue, immutable lines, and a status state machine."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement

from rapport.access.policy import Action
from rapport.access.records import Records, Row
from rapport.access.specs import CUSTOMER, ORDER
from rapport.crud import Resource, equal_filters, time_window, unique_error, unique_or_conflict
from rapport.errors import Conflict, InvalidInput, invalid_field
from rapport.models.base import utcnow
from rapport.orders import repository as repo
from rapport.orders.schemas import OrderCreate, OrderFilters, OrderRead, OrderUpdate
from rapport.products.repository import pricing
from rapport.schemas import CENT, MONEY_MAX

# Where an order may go next. Cancelling is possible until the goods are delivered; after
# completion only a refund undoes it. Cancelled and refunded orders are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"completed", "cancelled"}),
    "completed": frozenset({"refunded"}),
    "cancelled": frozenset(),
    "refunded": frozenset(),
}
_PAID = frozenset({"paid", "shipped", "completed", "refunded"})
_DONE = frozenset({"completed", "refunded"})


def price_lines(recs: Records, body: OrderCreate) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Line rows and order totals computed from the catalogue; every bad line is reported at once."""
    catalogue = pricing(recs.conn, (line.product_id for line in body.lines))
    errors: list[dict[str, Any]] = []

    def bad(index: int, field: str, message: str, kind: str) -> None:
        loc = ["body", "lines", index, field]
        errors.append({"loc": loc, "field": f"lines.{index}.{field}", "message": message, "type": kind})

    rows: list[dict[str, Any]] = []
    total = Decimal("0.00")
    cost: Decimal | None = Decimal("0.00")
    for i, line in enumerate(body.lines):
        product = catalogue.get(line.product_id)
        if product is None:
            bad(i, "product_id", f"no product {line.product_id}", "reference")
            continue
        if not product.is_active:
            bad(i, "product_id", f"product {line.product_id} is no longer sold (inactive)", "inactive")
            continue
        if product.currency != body.currency:
            bad(
                i,
                "product_id",
                f"product {line.product_id} is priced in {product.currency}, the order in {body.currency}",
                "currency",
            )
            continue
        unit_price = line.unit_price if line.unit_price is not None else Decimal(product.list_price)
        unit_price = unit_price.quantize(CENT)
        discount = line.discount_amount if line.discount_amount is not None else Decimal("0.00")
        gross = unit_price * line.quantity
        if discount > gross:
            bad(i, "discount_amount", f"must not exceed quantity × unit_price ({gross})", "too_large")
            continue
        line_total = gross - discount
        if line_total > MONEY_MAX:
            bad(i, "quantity", f"line total {line_total} is above the maximum {MONEY_MAX}", "too_large")
            continue
        unit_cost = None if product.unit_cost is None else Decimal(product.unit_cost).quantize(CENT)
        # An order's cost is only known when every line's cost is; a partial sum would inflate margin.
        cost = None if cost is None or unit_cost is None else cost + unit_cost * line.quantity
        total += line_total
        rows.append(
            {
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price": unit_price,
                "unit_cost": unit_cost,
                "discount_amount": discount,
                "line_total": line_total,
            }
        )
    if errors:
        first = errors[0]
        raise InvalidInput(f"{first['field']}: {first['message']}", errors=errors)
    if total > MONEY_MAX or (cost is not None and cost > MONEY_MAX):
        raise invalid_field("lines", f"order amounts exceed the maximum {MONEY_MAX}", "too_large")
    totals = {
        "total_amount": total,
        "cost_amount": cost,
        "margin_amount": None if cost is None else total - cost,
    }
    return rows, totals


class Orders(Resource):
    spec = ORDER
    read = OrderRead
    create = OrderCreate
    update = OrderUpdate
    filters = OrderFilters
    parent = "customer"
    default_sort = "-ordered_at"
    tag = "orders"

    def where(self, recs: Records, f: OrderFilters) -> Sequence[ColumnElement[bool]]:
        t = ORDER.table
        return [
            *equal_filters(t, f, "customer_id", "status", "channel"),
            *time_window(t.c.ordered_at, f.ordered_from, f.ordered_to, "ordered_from", "ordered_to"),
        ]

    def do_create(self, recs: Records, body: Any, parent_id: int | None = None) -> Row:
        assert parent_id is not None
        recs.require(ORDER, Action.create)
        recs.get(CUSTOMER, parent_id, audit_action=None)
        lines, totals = price_lines(recs, body)
        number = body.order_number
        if number is None:
            number = repo.new_number(recs.conn, body.ordered_at.strftime("%Y%m%d"))
        elif repo.number_taken(recs.conn, number):
            raise Conflict(f"order number '{number}' is already used", errors=unique_error("order_number"))
        # Orders entered after the fact (imports, till receipts) arrive already paid or done;
        # the order time is then the best known time of payment and completion.
        values = {
            "customer_id": parent_id,
            "order_number": number,
            "status": body.status,
            "channel": body.channel,
            "currency": body.currency,
            "ordered_at": body.ordered_at,
            "paid_at": body.ordered_at if body.status in _PAID else None,
            "completed_at": body.ordered_at if body.status in _DONE else None,
            **totals,
        }
        with unique_or_conflict("order_number", f"order number '{number}' is already used"):
            order_id = recs.create(ORDER, values)["id"]
        repo.insert_lines(recs.conn, order_id, lines)
        return self.get_after_write(recs, order_id)

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        current = self.locate(recs, record_id, Action.update, version)["status"]
        target = body.status
        if target not in TRANSITIONS.get(current, frozenset()):
            allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none (final)"
            raise invalid_field(
                "status",
                f"an order that is {current} cannot become {target}; next possible: {allowed}",
                "transition",
            )
        values: dict[str, Any] = {"status": target}
        if target == "paid":
            values["paid_at"] = utcnow()
        elif target == "completed":
            values["completed_at"] = utcnow()
        recs.update(ORDER, record_id, values, version)
        return self.get_after_write(recs, record_id)

    def expand(self, recs: Records, rows: list[Row]) -> list[Row]:
        # An API key scoped to orders alone gets orders without lines rather than a 403.
        if not rows or not recs.principal.can("order_line", Action.read):
            return rows
        lines = repo.lines_by_order(recs, [r["id"] for r in rows])
        for r in rows:
            r["lines"] = lines.get(r["id"], [])
        return rows


orders = Orders()
