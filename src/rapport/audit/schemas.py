from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from rapport.schemas import Input, Instant, Output, RefId

RecordKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]
Word = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9_.:-]+$")]


class AuditFilters(Input):
    cursor: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="next_cursor of the previous page"
    )
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    actor_id: RefId | None = None
    resource: Word | None = Field(default=None, description="e.g. customer, order, auth")
    record_id: RecordKey | None = None
    action: Word | None = Field(default=None, description="e.g. read, list, update, login")
    outcome: Literal["ok", "denied", "failed"] | None = None
    at_from: Instant | None = Field(default=None, description="at ≥ this instant")
    at_to: Instant | None = Field(default=None, description="at < this instant")


class AuditEventRead(Output):
    seq: int
    at: dt.datetime
    actor_id: int | None = None
    actor_kind: str
    action: str
    resource: str
    record_id: str | None = None
    fields: list[str]
    outcome: str
    ip: str | None = None
    request_id: str | None = None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(Output):
    items: list[AuditEventRead]
    next_cursor: str | None = None
    limit: int


class ChainReport(Output):
    ok: bool
    checked: int
    last_seq: int
    last_hash: str
    bad_seq: int | None = None
    reason: str | None = None
