"""Products, orders and order lines: the transaction history value analytics reads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rapport.models.base import Base, BigId, Tracked
from rapport.privacy.classification import not_personal, pii


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

    id: Mapped[int] = mapped_column(
        BigId,
        primary_key=True,
        info=pii("reference", purposes=("sales", "service", "legal_obligation", "analytics")),
    )
    order_number: Mapped[str] = mapped_column(
        String(64),
        unique=True,
        info=pii(
            "reference",
            purposes=("sales", "service", "legal_obligation"),
            note="printed on invoices and receipts",
        ),
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id"),
        info=pii("reference", purposes=("sales", "service", "legal_obligation", "analytics")),
    )
    status: Mapped[str] = mapped_column(
        String(16), info=pii("financial", purposes=("sales", "service", "legal_obligation", "analytics"))
    )
    channel: Mapped[str] = mapped_column(String(16), info=pii("behavioural", purposes=("sales", "analytics")))
    currency: Mapped[str] = mapped_column(
        String(3), info=pii("financial", purposes=("sales", "legal_obligation", "analytics"))
    )
    total_amount: Mapped[Decimal] = mapped_column(
        info=pii("financial", purposes=("sales", "legal_obligation", "analytics", "profiling"))
    )
    cost_amount: Mapped[Decimal | None] = mapped_column(
        info=not_personal("our purchase cost of the goods; says nothing about the buyer")
    )
    margin_amount: Mapped[Decimal | None] = mapped_column(
        info=pii("financial", purposes=("sales", "analytics"), note="derived from the price the person paid")
    )
    ordered_at: Mapped[dt.datetime] = mapped_column(
        info=pii("behavioural", purposes=("sales", "legal_obligation", "analytics"))
    )
    paid_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("financial", purposes=("sales", "legal_obligation", "analytics"))
    )
    completed_at: Mapped[dt.datetime | None] = mapped_column(
        info=pii("behavioural", purposes=("sales", "service", "analytics"))
    )

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", lazy="raise")


class OrderLine(Base):
    __tablename__ = "order_line"

    id: Mapped[int] = mapped_column(
        BigId, primary_key=True, info=pii("reference", purposes=("sales", "legal_obligation", "analytics"))
    )
    order_id: Mapped[int] = mapped_column(
        ForeignKey("sales_order.id", ondelete="CASCADE"),
        index=True,
        info=pii("reference", purposes=("sales", "legal_obligation", "analytics")),
    )
    product_id: Mapped[int] = mapped_column(
        ForeignKey("product.id"),
        index=True,
        info=pii(
            "behavioural",
            purposes=("sales", "legal_obligation", "analytics", "profiling"),
            note="what the person bought",
        ),
    )
    quantity: Mapped[int] = mapped_column(
        info=pii("financial", purposes=("sales", "legal_obligation", "analytics"))
    )
    unit_price: Mapped[Decimal] = mapped_column(
        info=pii("financial", purposes=("sales", "legal_obligation", "analytics"))
    )
    unit_cost: Mapped[Decimal | None] = mapped_column(
        info=not_personal("our purchase cost of the goods; says nothing about the buyer")
    )
    discount_amount: Mapped[Decimal] = mapped_column(
        default=Decimal("0"), info=pii("financial", purposes=("sales", "legal_obligation", "analytics"))
    )
    line_total: Mapped[Decimal] = mapped_column(
        info=pii("financial", purposes=("sales", "legal_obligation", "analytics"))
    )

    order: Mapped[Order] = relationship(back_populates="lines", lazy="raise")
