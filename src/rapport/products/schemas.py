from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import Field

from rapport.schemas import Currency, Input, ListParams, Money, Output, Patch, PositiveMoney
from rapport.text import Code, Name, SearchText, ShortLine


class ProductCreate(Input):
    sku: Code = Field(description="Stock-keeping unit, unique across the catalogue")
    name: Name
    category: ShortLine | None = None
    list_price: PositiveMoney = Field(description="Price per unit before discounts")
    unit_cost: Money | None = Field(default=None, description="What one unit costs you (margins)")
    currency: Currency = "CNY"
    is_active: bool = True


class ProductUpdate(Patch):
    sku: Code | None = None
    name: Name | None = None
    category: ShortLine | None = None
    list_price: PositiveMoney | None = None
    unit_cost: Money | None = None
    currency: Currency | None = None
    is_active: bool | None = None


class ProductFilters(ListParams):
    q: SearchText | None = Field(default=None, description="Start of the name or SKU")
    category: ShortLine | None = None
    is_active: bool | None = None


class ProductRead(Output):
    id: int
    sku: str | None = None
    name: str | None = None
    category: str | None = None
    list_price: Decimal | None = None
    unit_cost: Decimal | None = None
    currency: str | None = None
    is_active: bool | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None
