"""Declarative base, column types and mixins shared by every table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, Numeric, Table, func
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from rapport.privacy.classification import not_personal, pii

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer, "sqlite")
Money = Numeric(14, 2)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores timestamps in UTC and always hands back aware datetimes (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012
        dt.datetime: UTCDateTime(),
        Decimal: Money,
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Tracked:
    """Created/updated timestamps and the optimistic-concurrency version every entity carries."""

    # On a table that holds personal data these say when a person's record changed.
    created_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, server_default=func.now(), info=pii("record_metadata", purposes=("service",))
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow,
        onupdate=utcnow,
        server_default=func.now(),
        info=pii("record_metadata", purposes=("service",)),
    )
    version: Mapped[int] = mapped_column(
        default=1, server_default="1", info=not_personal("optimistic-concurrency counter")
    )


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, typed as a Table for Core statements."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
