"""Base classes for request and response bodies."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# -- shared field types ---------------------------------------------------------------------------

RefId = Annotated[int, Field(ge=1, le=2**53, description="Id of another record")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), Field(description="ISO 4217 code")]

# Money columns are NUMERIC(14, 2); single prices stay two digits below that so a line
# (price × quantity) and an order total still fit, and totals are checked against MONEY_MAX.
MONEY_MAX = Decimal("999999999999.99")
PRICE_MAX = Decimal("9999999999.99")
CENT = Decimal("0.01")


def _cents(value: Decimal) -> Decimal:
    # "1e2" and "1.5" arrive with odd exponents; storing and echoing 100.00 / 1.50 is unambiguous.
    return value.quantize(CENT)


Money = Annotated[
    Decimal,
    Field(ge=0, le=PRICE_MAX, max_digits=12, decimal_places=2),
    AfterValidator(_cents),
]
PositiveMoney = Annotated[
    Decimal,
    Field(gt=0, le=PRICE_MAX, max_digits=12, decimal_places=2),
    AfterValidator(_cents),
]

EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
# Client clocks drift; an event stamped a few minutes ahead is still "now".
CLOCK_SKEW = dt.timedelta(minutes=5)


def _in_range(value: dt.datetime) -> dt.datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1970 and 2200")
    return value.astimezone(dt.UTC)


def _not_future(value: dt.datetime) -> dt.datetime:
    if value > dt.datetime.now(dt.UTC) + CLOCK_SKEW:
        raise ValueError("must not be in the future")
    return value


def _iso_only(value: Any) -> Any:
    # Pydantic would read a number (or a numeric string, as query parameters are) as Unix
    # seconds; the documented format is an RFC 3339 date-time, so anything else is refused.
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMERIC.fullmatch(value.strip())):
        raise ValueError("must be an RFC 3339 date-time with a zone, e.g. 2025-01-31T09:00:00+08:00")
    return value


_NUMERIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

Instant = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_in_range)]
PastInstant = Annotated[
    AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_in_range), AfterValidator(_not_future)
]


class Input(BaseModel):
    """Request bodies: unknown fields are refused, which also blocks mass assignment."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    def changes(self) -> dict[str, Any]:
        """Only the fields the client actually sent (PATCH semantics)."""
        return self.model_dump(exclude_unset=True)


class Patch(Input):
    @model_validator(mode="after")
    def _not_empty(self) -> Patch:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self


class ListParams(Input):
    """Query parameters every list accepts; a resource's filters extend this."""

    sort: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="Sort key; prefix '-' for descending"
    )
    cursor: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="next_cursor of the page before, or prev_cursor of the page after"
    )
    limit: Annotated[int, Field(ge=1, le=200)] = Field(default=50, description="Page size")


class Output(BaseModel):
    """Response bodies. Fields a caller's role may not read are left out entirely."""

    model_config = ConfigDict(extra="ignore")


class Page(Output):
    next_cursor: str | None = None
    limit: int
