from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from rapport.schemas import Input, ListParams, Output


class ClusterFilters(ListParams):
    status: Literal["open", "merged", "dismissed"] | None = Field(
        default="open", description="Review state; open clusters by default"
    )


class DedupMember(Output):
    """A customer in a cluster, with the fields the caller's role may read (masked like the API)."""

    id: int
    display_name: str | None = None
    family_name: str | None = None
    given_name: str | None = None
    name_latin: str | None = None
    gender: str | None = None
    birth_date: dt.date | None = None
    region: str | None = None
    city: str | None = None
    owner_id: int | None = None
    team_id: int | None = None
    created_at: dt.datetime | None = None


class DedupPairOut(Output):
    left_id: int
    right_id: int
    probability: float


class DedupClusterRead(Output):
    id: int
    run_id: int
    status: str
    size: int
    max_probability: float
    decided_by: int | None = None
    decided_at: dt.datetime | None = None
    merge_id: int | None = None
    created_at: dt.datetime
    version: int
    members: list[DedupMember]
    hidden_members: int = Field(description="Members outside the caller's record scope (not shown)")
    pairs: list[DedupPairOut]


class DedupClusterPage(Output):
    items: list[DedupClusterRead]
    next_cursor: str | None = None
    limit: int


class MergeIn(Input):
    survivor_id: Annotated[int, Field(ge=1, le=2**53, description="The member that stays")]
    reason: Annotated[str, StringConstraints(max_length=500)] = ""
