from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from rapport.schemas import Input, Output

EventName = Literal["customer.created", "customer.updated"]
EVENTS: tuple[str, ...] = ("customer.created", "customer.updated")


class WebhookIn(Input):
    url: Annotated[str, StringConstraints(min_length=8, max_length=2048)] = Field(
        description="http(s) URL of a public receiver; private, loopback and similar addresses are refused"
    )
    events: list[EventName] = Field(min_length=1, max_length=len(EVENTS))
    active: bool = True


class WebhookOut(Output):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: dt.datetime | None = None
    version: int


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="Signing secret, shown once: X-Rapport-Signature is sha256=HMAC(secret, "
        "'<X-Rapport-Timestamp>.<body>')"
    )


class DeliveryOut(Output):
    id: int
    event: str
    record_id: str | None = None
    outcome: str
    status_code: int | None = None
    error: str | None = None
    attempted_at: dt.datetime
