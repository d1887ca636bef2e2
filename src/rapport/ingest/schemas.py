"""What an imported row must satisfy, and the bodies of the import API.

The row models reuse the field types of the API schemas (``_CustomerFields`` of
:mod:`rapport.customers.schemas`, the order enums of :mod:`rapport.orders.schemas`), so a value an
import accepts is exactly a value the API accepts: the rules are declared once.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from rapport.activities.schemas import Direction, InteractionChannel, InteractionKind
from rapport.customers.schemas import Stage, Tags, _CustomerFields
from rapport.models.customers import PROFILE_COLUMNS
from rapport.orders.schemas import OrderChannel, OrderStatus
from rapport.schemas import Currency, Input, Money, Output
from rapport.text import Code, Line, LongText, Name, ShortLine

ImportKind = Literal["customers", "orders", "organisations", "interactions"]
ImportMode = Literal["create", "update", "upsert"]
MatchKey = Literal["external_id", "email", "phone"]
JobStatus = Literal["queued", "running", "cancelled", "failed", "done", "reverted"]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]

# Fields a customer import column may map to (besides the customer columns): contact points,
# tags, the external id and the organisation by name.
CUSTOMER_FIELDS = (
    *PROFILE_COLUMNS,
    "phone",
    "email",
    "wechat",
    "address",
    "tags",
    "external_id",
    "organisation",
    "note",
)
ORDER_FIELDS = (
    "order_number",
    "customer_external_id",
    "customer_email",
    "customer_phone",
    "ordered_at",
    "status",
    "channel",
    "currency",
    "sku",
    "quantity",
    "unit_price",
    "discount_amount",
)

ORGANISATION_FIELDS = (
    "name",
    "name_latin",
    "industry",
    "size_band",
    "website",
    "region",
    "city",
    "lifecycle_stage",
)
INTERACTION_FIELDS = (
    "customer_external_id",
    "customer_email",
    "customer_phone",
    "kind",
    "direction",
    "channel",
    "occurred_at",
    "subject",
    "body",
)
FIELDS_BY_KIND: dict[str, tuple[str, ...]] = {
    "customers": CUSTOMER_FIELDS,
    "orders": ORDER_FIELDS,
    "organisations": ORGANISATION_FIELDS,
    "interactions": INTERACTION_FIELDS,
}


class InteractionImportRow(Input):
    """One interaction: the API's interaction fields, its customer found by the match keys."""

    customer_external_id: ExternalId | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    kind: InteractionKind
    direction: Direction = "internal"
    channel: InteractionChannel | None = None
    occurred_at: dt.datetime
    subject: Line | None = None
    body: LongText | None = None


class AddressIn(Input):
    value: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    region: ShortLine | None = None
    city: ShortLine | None = None
    district: ShortLine | None = None


class CustomerImportRow(_CustomerFields):
    """One customer row after normalisation: the API's customer fields plus what an import adds."""

    display_name: Name
    lifecycle_stage: Stage | None = None
    tags: Tags = Field(default_factory=list)
    external_id: ExternalId | None = None
    organisation: Name | None = None
    phones: Annotated[list[str], Field(max_length=5)] = Field(default_factory=list)
    emails: Annotated[list[str], Field(max_length=5)] = Field(default_factory=list)
    wechat: ShortLine | None = None
    address: AddressIn | None = None
    note: Annotated[str, StringConstraints(max_length=20_000)] | None = None


class OrderLineImportRow(Input):
    """One line of an order file: the order's fields repeat on each of its lines."""

    order_number: Code
    customer_external_id: ExternalId | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    ordered_at: dt.datetime
    status: OrderStatus = "completed"
    channel: OrderChannel = "other"
    currency: Currency = "CNY"
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=100_000)]
    unit_price: Money | None = None
    discount_amount: Money | None = None


# -- API ------------------------------------------------------------------------------------------


class ImportOptions(Input):
    kind: ImportKind = "customers"
    mode: ImportMode = "upsert"
    match: Annotated[list[MatchKey], Field(min_length=1, max_length=3)] = Field(
        default_factory=lambda: ["external_id", "email", "phone"],  # type: ignore[arg-type]
        description="Keys that find the existing record, tried in this order",
    )
    mapping: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], str | None] | None = Field(
        default=None, description="Source column -> Rapport field (null: ignore); proposed when left out"
    )
    batch_size: Annotated[int, Field(ge=1, le=50_000)] = 5000
    day_first: bool = Field(default=True, description="How 05/03/2024 reads: True 5 March, False May 3")
    dry_run: bool = Field(default=False, description="Preview only: nothing is written")
    match_duplicates: bool = Field(
        default=False,
        description="Customers no key matched are compared with existing ones by the duplicate-detection "
        "model; a probable match (>= 0.95) is updated instead of created (modes update and upsert)",
    )


class ImportRowsIn(ImportOptions):
    """JSON rows instead of a file: each row maps column names to cell text."""

    rows: Annotated[
        list[dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], str | int | float | None]],
        Field(min_length=1, max_length=10_000),
    ]


class MappingIn(Input):
    kind: ImportKind = "customers"
    headers: Annotated[
        list[Annotated[str, StringConstraints(max_length=200)]], Field(min_length=1, max_length=500)
    ]


class FieldProposal(Output):
    column: str
    field: str | None
    confidence: float
    reason: str


class MappingOut(Output):
    kind: ImportKind
    mapping: dict[str, str | None]
    proposals: list[FieldProposal]
    fields: list[str]


class ImportJobRead(Output):
    id: int
    kind: str
    status: str
    mode: str
    match_keys: list[str]
    mapping: dict[str, Any]
    file_name: str
    file_digest: str
    file_size: int
    batch_size: int
    checkpoint_line: int
    batches_done: int
    rows_done: int
    created_count: int
    updated_count: int
    unchanged_count: int
    rejected_count: int
    created_by: int | None = None
    team_id: int | None = None
    cancel_requested: bool
    error: str | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    reverted_at: dt.datetime | None = None
    revertible_until: dt.datetime | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


class PreviewRow(Output):
    line: int
    outcome: Literal["create", "update", "unchanged", "reject"]
    customer_id: int | None = None
    values: dict[str, Any] = Field(default_factory=dict)
    changes: list[str] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class PreviewOut(Output):
    kind: ImportKind
    mapping: dict[str, str | None]
    rows: list[PreviewRow]


__all__ = [
    "CUSTOMER_FIELDS",
    "ORDER_FIELDS",
    "AddressIn",
    "CustomerImportRow",
    "Decimal",
    "ImportJobRead",
    "ImportOptions",
    "ImportRowsIn",
    "Line",
    "MappingIn",
    "MappingOut",
    "OrderLineImportRow",
    "PreviewOut",
    "PreviewRow",
]
