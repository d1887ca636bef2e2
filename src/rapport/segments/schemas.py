from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from rapport.schemas import Input, ListParams, Output, Patch
from rapport.segments.rules import Rule, check_size
from rapport.text import LongText, Name, SearchText


def _sized(rule: Rule) -> Rule:
    check_size(rule)
    return rule


DefinitionField = Annotated[
    Rule,
    AfterValidator(_sized),
    Field(
        description="Rule tree: and/or/not over comparisons (=, !=, >, >=, <, <=), in, between, "
        "top N% and consent(purpose) on whitelisted fields",
        examples=[
            {
                "op": "and",
                "rules": [
                    {"op": "top", "field": "clv_12m", "percent": 20},
                    {"op": ">", "field": "churn_risk", "value": 0.6},
                    {"op": "consent", "purpose": "marketing_wechat"},
                ],
            }
        ],
    ),
]


class SegmentCreate(Input):
    name: Name
    description: LongText | None = None
    definition: DefinitionField


class SegmentUpdate(Patch):
    name: Name | None = None
    description: LongText | None = None
    definition: DefinitionField | None = None


class SegmentFilters(ListParams):
    q: SearchText | None = Field(default=None, description="Start of the name")


class SegmentPreviewIn(Input):
    definition: DefinitionField


class SegmentRead(Output):
    id: int
    name: str | None = None
    description: str | None = None
    definition: dict[str, Any] | None = None
    owner_id: int | None = None
    team_id: int | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class SegmentPreviewOut(Output):
    count: int = Field(description="Members visible to the caller")
    customer_ids: list[int] = Field(description="The first 20 members by id")


class MembersParams(Input):
    cursor: Annotated[str, Field(max_length=512)] | None = Field(
        default=None, description="next_cursor of the previous page"
    )
    limit: Annotated[int, Field(ge=1, le=1000)] = Field(default=100, description="Page size")


class SegmentMembers(Output):
    segment_id: int
    count: int = Field(description="Members visible to the caller")
    customer_ids: list[int]
    next_cursor: str | None = None
    limit: int
