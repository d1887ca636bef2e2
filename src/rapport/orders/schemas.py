from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from rapport.schemas import (
    Currency,
    Input,
    Instant,
    ListParams,
    Money,
    Output,
    PastInstant,
    Patch,
    RefId,
)
from rapport.text import Code

OrderStatus = Literal["pending", "paid", "shipped", "completed", "cancelled", "refunded"]
OrderChannel = Literal["online", "in_store", "phone", "wechat", "marketplace", "wholesale", "other"]


class OrderLineIn(Input):
    product_id: RefId
    quantity: Annotated[int, Field(ge=1, le=100_000)]
    unit_price: Money | None = Field(default=None, description="Defaults to the product's list price")
    discount_amount: Money | None = Field(default=None, description="Off the whole line; default 0")


class OrderCreate(Input):
    order_number: Code | None = Field(default=None, description="Unique; generated when left out")
    status: OrderStatus = "pending"
    channel: OrderChannel
    currency: Currency = Field(description="Every product on the order must be priced in it")
    ordered_at: PastInstant
    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=500)]


class OrderUpdate(Patch):
    # Lines, amounts and the customer are fixed once an order exists; only its progress moves.
    status: OrderStatus


class OrderFilters(ListParams):
    customer_id: RefId | None = None
    status: OrderStatus | None = None
    channel: OrderChannel | None = None
    ordered_from: Instant | None = Field(default=None, description="ordered_at ≥ this instant")
    ordered_to: Instant | None = Field(default=None, description="ordered_at < this instant")


class OrderLineRead(Output):
    id: int
    order_id: int | None = None
    product_id: int | None = None
    quantity: int | None = None
    unit_price: Decimal | None = None
    unit_cost: Decimal | None = None
    discount_amount: Decimal | None = None
    line_total: Decimal | None = None


class OrderRead(Output):
    id: int
    order_number: str | None = None
    customer_id: int | None = None
    status: str | None = None
    channel: str | None = None
    currency: str | None = None
    total_amount: Decimal | None = None
    cost_amount: Decimal | None = None
    margin_amount: Decimal | None = None
    ordered_at: dt.datetime | None = None
    paid_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    lines: list[OrderLineRead] | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None
