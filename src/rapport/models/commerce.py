"""Products, orders and order lines: the transaction history value analytics reads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rapport.models.base import Base, BigId, Tracked


class Product(Tracked, Base):
    __tablename__ = "product"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100), index=True)
    list_price: Mapped[Decimal]
    unit_cost: Mapped[Decimal | None]
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    is_active: Mapped[bool] = mapped_column(default=True)


class Order(Tracked, Base):
    __tablename__ = "sales_order"
    __table_args__ = (
        Index("ix_sales_order_customer_id_ordered_at", "customer_id", "ordered_at"),
        Index("ix_sales_order_ordered_at_id", "ordered_at", "id"),
        Index("ix_sales_order_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_number: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    status: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[Decimal]
    cost_amount: Mapped[Decimal | None]
    margin_amount: Mapped[Decimal | None]
    ordered_at: Mapped[dt.datetime]
    paid_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", lazy="raise")


class OrderLine(Base):
    __tablename__ = "order_line"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("sales_order.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    quantity: Mapped[int]
    unit_price: Mapped[Decimal]
    unit_cost: Mapped[Decimal | None]
    discount_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    line_total: Mapped[Decimal]

    order: Mapped[Order] = relationship(back_populates="lines", lazy="raise")
