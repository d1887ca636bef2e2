"""Request and response bodies of the merge API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from rapport.merge.service import MAX_MERGED
from rapport.schemas import Input, Output

CustomerRef = Annotated[int, Field(ge=1, le=2**53)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=80)]


class MergeIn(Input):
    survivor_id: CustomerRef = Field(description="The customer that is kept")
    merged_ids: list[CustomerRef] = Field(
        min_length=1, max_length=MAX_MERGED, description="Duplicates merged into the survivor"
    )
    overrides: dict[FieldName, CustomerRef] = Field(
        default_factory=dict,
        max_length=200,
        description='Per field, the customer whose value to keep: {"city": 42, "attributes.vip": 42}',
    )
    reason: Annotated[str, StringConstraints(max_length=2000)] = Field(
        default="", description="Why (kept sealed in the merge record, never in the audit chain)"
    )


class MergeRead(Output):
    id: int
    survivor_id: int
    merged_ids: list[int]
    status: str = Field(description="merged | undone | erased")
    choices: dict[str, dict[str, Any]] = Field(description="Per field: from (customer id) and rule")
    moved: dict[str, int] = Field(description="Rows moved to the survivor, per table")
    consents: list[dict[str, Any]] = Field(default_factory=list, description="Consent events appended")
    reason: str | None = None
    merged_at: dt.datetime | None = None
    merged_by: int | None = None
    undone_at: dt.datetime | None = None
    undone_by: int | None = None


class PreviewField(Output):
    field: str
    rule: str
    source_id: int
    value: Any = None
    hidden: bool = False
    candidates: dict[str, Any] = Field(default_factory=dict)


class MergePreview(Output):
    survivor_id: int
    merged_ids: list[int]
    fields: list[PreviewField]
