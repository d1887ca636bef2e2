"""Product catalogue: unique SKUs, money validation, and deletion only while unused."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, or_

from rapport.access.policy import Action
from rapport.access.records import Records, Row
from rapport.access.specs import PRODUCT
from rapport.crud import Resource, equal_filters, refuse_nulls, starts_with, unique_error, unique_or_conflict
from rapport.errors import Conflict
from rapport.products import repository as repo
from rapport.products.schemas import ProductCreate, ProductFilters, ProductRead, ProductUpdate

_NOT_NULL = ("sku", "name", "list_price", "currency", "is_active")


class Products(Resource):
    spec = PRODUCT
    read = ProductRead
    create = ProductCreate
    update = ProductUpdate
    filters = ProductFilters
    default_sort = "name"
    tag = "products"

    def where(self, recs: Records, f: ProductFilters) -> Sequence[ColumnElement[bool]]:
        t = PRODUCT.table
        clauses = equal_filters(t, f, "category", "is_active")
        if f.q:
            clauses.append(or_(starts_with(t.c.name, f.q), starts_with(t.c.sku, f.q)))
        return clauses

    def do_create(self, recs: Records, body: Any, parent_id: int | None = None) -> Row:
        recs.require(PRODUCT, Action.create)
        _unique_sku(recs, body.sku, None)
        with unique_or_conflict("sku", f"SKU '{body.sku}' is already used by another product"):
            return super().do_create(recs, body, parent_id)

    def do_update(self, recs: Records, record_id: int, body: Any, version: int) -> Row:
        with unique_or_conflict("sku", f"SKU '{body.sku}' is already used by another product"):
            return super().do_update(recs, record_id, body, version)

    def prepare_update(self, recs: Records, record_id: int, body: Any) -> dict[str, Any]:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, *_NOT_NULL)
        if "sku" in values:
            self.locate(recs, record_id, Action.update)
            _unique_sku(recs, values["sku"], record_id)
        return values

    def do_delete(self, recs: Records, record_id: int, version: int) -> None:
        self.locate(recs, record_id, Action.delete, version)
        if repo.in_order_lines(recs.conn, record_id):
            raise Conflict(
                f"product {record_id} appears on orders and cannot be deleted; "
                "set is_active to false to withdraw it from sale"
            )
        recs.delete(PRODUCT, record_id, version)


def _unique_sku(recs: Records, sku: str, own_id: int | None) -> None:
    holder = repo.sku_owner(recs.conn, sku)
    if holder is not None and holder != own_id:
        raise Conflict(f"SKU '{sku}' is already used by product {holder}", errors=unique_error("sku"))


products = Products()
