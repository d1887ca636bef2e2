from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from rapport.schemas import Input, Instant, ListParams, Output, PastInstant, Patch, RefId
from rapport.text import Line, LongText, Name

InteractionKind = Literal["note", "call", "email", "chat", "visit", "social"]
Direction = Literal["inbound", "outbound", "internal"]
InteractionChannel = Literal["phone", "email", "sms", "wechat", "in_person", "web", "social", "other"]
Priority = Literal["low", "normal", "high", "urgent"]
TaskStatus = Literal["open", "done", "cancelled"]


class InteractionCreate(Input):
    kind: InteractionKind
    direction: Direction = "internal"
    channel: InteractionChannel | None = None
    occurred_at: PastInstant | None = Field(default=None, description="Defaults to now")
    subject: Line | None = None
    body: LongText | None = None


class InteractionUpdate(Patch):
    kind: InteractionKind | None = None
    direction: Direction | None = None
    channel: InteractionChannel | None = None
    occurred_at: PastInstant | None = None
    subject: Line | None = None
    body: LongText | None = None


class InteractionFilters(ListParams):
    customer_id: RefId | None = None
    kind: InteractionKind | None = None
    author_id: RefId | None = None
    occurred_from: Instant | None = Field(default=None, description="occurred_at ≥ this instant")
    occurred_to: Instant | None = Field(default=None, description="occurred_at < this instant")


class InteractionRead(Output):
    id: int
    customer_id: int | None = None
    kind: str | None = None
    direction: str | None = None
    channel: str | None = None
    author_id: int | None = None
    occurred_at: dt.datetime | None = None
    subject: str | None = None
    body: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class TaskCreate(Input):
    title: Name
    description: LongText | None = None
    due_at: Instant | None = None
    priority: Priority = "normal"
    assignee_id: RefId | None = Field(default=None, description="Defaults to you")


class TaskUpdate(Patch):
    title: Name | None = None
    description: LongText | None = None
    due_at: Instant | None = None
    priority: Priority | None = None
    assignee_id: RefId | None = None
    status: TaskStatus | None = None


class TaskFilters(ListParams):
    mine: bool = Field(default=False, description="Only tasks assigned to you")
    overdue: bool = Field(default=False, description="Only open tasks whose due time has passed")
    status: TaskStatus | None = None
    priority: Priority | None = None
    customer_id: RefId | None = None
    assignee_id: RefId | None = None
    due_before: Instant | None = Field(default=None, description="due_at < this instant")


class TaskRead(Output):
    id: int
    customer_id: int | None = None
    title: str | None = None
    description: str | None = None
    status: str | None = None
    priority: str | None = None
    due_at: dt.datetime | None = None
    assignee_id: int | None = None
    completed_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None
