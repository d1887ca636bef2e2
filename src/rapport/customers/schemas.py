from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from rapport.contacts.schemas import ContactPointIn, ContactPointRead
from rapport.privacy.schemas import ConsentSummary
from rapport.schemas import Input, ListParams, Output, Patch
from rapport.text import Code, Line, Name, SearchText, ShortLine, Tag, clean_text

Gender = Literal["female", "male", "other", "unknown"]
Language = Literal["zh-CN", "zh-TW", "en", "ja", "ko"]
Channel = Literal["email", "phone", "sms", "wechat", "mail", "in_person", "none"]
Stage = Literal["lead", "prospect", "customer", "loyal", "at_risk", "churned"]
AttrKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
JSON_SAFE_INT = 2**53


def _exact_number(value: Any) -> Any:
    # Beyond 2**53 a JSON number is no longer exact in most clients (and orjson cannot write one
    # beyond 64 bits at all), so such values are refused instead of stored and then unreadable.
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > JSON_SAFE_INT:
        raise ValueError(f"integers must be between -{JSON_SAFE_INT} and {JSON_SAFE_INT}")
    return value


def _attr_text(value: str) -> str:
    return clean_text(value, multiline=True)


AttrValue = Annotated[
    Annotated[str, StringConstraints(max_length=1000), AfterValidator(_attr_text)]
    | bool
    | int
    # NaN and Infinity are not JSON: PostgreSQL refuses them and SQLite would echo them as null.
    | Annotated[float, Field(allow_inf_nan=False)]
    | None,
    BeforeValidator(_exact_number),
]
Attributes = dict[AttrKey, AttrValue]


def _past_birth_date(value: dt.date | None) -> dt.date | None:
    if value is not None and not (dt.date(1900, 1, 1) <= value <= dt.date.today()):
        raise ValueError("must be between 1900-01-01 and today")
    return value


BirthDate = Annotated[dt.date, AfterValidator(_past_birth_date)]
Tags = Annotated[list[Tag], Field(max_length=50)]


class _CustomerFields(Input):
    family_name: ShortLine | None = None
    given_name: ShortLine | None = None
    name_latin: Line | None = None
    gender: Gender | None = None
    birth_date: BirthDate | None = None
    occupation: ShortLine | None = None
    region: ShortLine | None = None
    city: ShortLine | None = None
    preferred_language: Language | None = None
    preferred_channel: Channel | None = None
    acquisition_source: Code | None = None
    organisation_id: Annotated[int, Field(ge=1, le=2**53)] | None = None
    attributes: Attributes = Field(default_factory=dict, max_length=100)


class CustomerCreate(_CustomerFields):
    display_name: Name = Field(description="Full name as the customer writes it, e.g. 王小明")
    lifecycle_stage: Stage = "lead"
    tags: Tags = Field(default_factory=list)
    contact_points: list[ContactPointIn] = Field(default_factory=list, max_length=20)


class CustomerUpdate(_CustomerFields, Patch):
    display_name: Name | None = None
    lifecycle_stage: Stage | None = None
    tags: Tags | None = None
    attributes: Attributes | None = Field(default=None, max_length=100)  # type: ignore[assignment]


class AssignmentIn(Input):
    owner_id: Annotated[int, Field(ge=1, le=2**53)] | None = None
    team_id: Annotated[int, Field(ge=1, le=2**53)] | None = None


class CustomerFilters(ListParams):
    q: SearchText | None = Field(
        default=None, description="Name (Chinese, Latin or pinyin), phone in any format, or email"
    )
    lifecycle_stage: Stage | None = None
    region: ShortLine | None = None
    city: ShortLine | None = None
    tag: Tag | None = None
    owner_id: Annotated[int, Field(ge=1, le=2**53)] | None = None
    team_id: Annotated[int, Field(ge=1, le=2**53)] | None = None
    organisation_id: Annotated[int, Field(ge=1, le=2**53)] | None = None


class CustomerExportParams(CustomerFilters):
    format: Literal["csv", "xlsx", "jsonl", "vcard"] = Field(
        default="csv", description="csv, xlsx, jsonl (JSON Lines) or vcard (vCard 4.0)"
    )
    bom: bool | None = Field(
        default=None,
        description="Start the file with a UTF-8 byte-order mark (Excel reads Chinese text right); "
        "default: on for csv, off otherwise; ignored for xlsx",
    )
    limit: Annotated[int, Field(ge=1, le=50_000)] | None = Field(  # type: ignore[assignment]
        default=None,
        description="Rows per file, with X-Next-Cursor for the rest; omit to stream every matching row",
    )
    pseudonymised: bool = Field(
        default=False,
        description="No direct identifiers: keyed pseudonyms, 5-year birth bands, region only",
    )


class CustomerRead(Output):
    id: int
    display_name: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    name_latin: str | None = None
    gender: str | None = None
    birth_date: dt.date | None = None
    occupation: str | None = None
    region: str | None = None
    city: str | None = None
    preferred_language: str | None = None
    preferred_channel: str | None = None
    acquisition_source: str | None = None
    lifecycle_stage: str | None = None
    organisation_id: int | None = None
    owner_id: int | None = None
    team_id: int | None = None
    tags: list[str] | None = None
    attributes: dict[str, Any] | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class OrderSummary(Output):
    order_count: int
    total_amount: Decimal
    first_order_at: dt.datetime | None = None
    last_order_at: dt.datetime | None = None


class TimelineEntry(Output):
    kind: str
    id: int
    at: dt.datetime | None = None
    title: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class Customer360(Output):
    customer: CustomerRead
    contact_points: list[ContactPointRead]
    order_summary: OrderSummary | None = None
    open_tasks: list[dict[str, Any]] = Field(default_factory=list)
    timeline: list[TimelineEntry]
    consents: ConsentSummary | None = Field(
        default=None,
        description="Current consent per purpose and the restriction flag (roles with consent read)",
    )
