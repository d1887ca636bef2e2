from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from rapport.schemas import Input, ListParams, Output, RefId
from rapport.text import Code, LongText

Kind = Literal["access", "correct", "delete", "port", "restrict", "withdraw_consent"]
Status = Literal["received", "verified", "in_progress", "completed", "rejected"]
Law = Literal["PIPL", "GDPR"]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class RequestCreate(Input):
    customer_id: RefId
    kind: Kind
    channel: Code = Field(description="How the person asked: email, phone, web, letter, in_person ...")
    details: LongText | None = Field(default=None, description="What the person asked for")
    jurisdiction: Law | None = Field(default=None, description="Defaults to RAPPORT_DSR_JURISDICTION")
    purpose: Code | None = Field(default=None, description="withdraw_consent only: the consent purpose")


class RequestFilters(ListParams):
    status: Status | None = None
    kind: Kind | None = None
    customer_id: RefId | None = None
    assignee_id: RefId | None = None
    overdue: bool = Field(default=False, description="Only open requests past their deadline")


class StatusChange(Input):
    status: Literal["verified", "in_progress", "completed", "rejected"]
    resolution: Reason | None = Field(
        default=None, description="Required to reject (the reason) and to complete a correction"
    )


class Extension(Input):
    reason: Reason


class RequestAssignment(Input):
    assignee_id: RefId


class RequestRead(Output):
    id: int
    customer_id: int | None = None
    kind: str | None = None
    status: str | None = None
    jurisdiction: str | None = None
    channel: str | None = None
    details: str | None = None
    purpose: str | None = None
    received_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    extended_at: dt.datetime | None = None
    extension_reason: str | None = None
    verified_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    resolution: str | None = None
    assignee_id: int | None = None
    opened_by_id: int | None = None
    overdue_notified_at: dt.datetime | None = None
    export_expires_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class CustomerExportIn(Input):
    """A rapport.customer-export/1 document (see rapport.privacy.portability) to import."""

    format: Literal["rapport.customer-export/1"]
    exported_at: str | None = None
    customer: dict[str, Any]
    tags: list[str] = Field(default_factory=list, max_length=50)
    contact_points: list[dict[str, Any]] = Field(default_factory=list, max_length=20)
    interactions: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    tasks: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
    orders: list[dict[str, Any]] = Field(
        default_factory=list, description="Carried for the person; not imported"
    )
