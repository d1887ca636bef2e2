from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from rapport.schemas import Input, Output, Patch
from rapport.text import Line, ShortLine

ContactKind = Literal["email", "phone", "wechat", "address", "national_id"]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
ContactValue = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class ContactPointIn(Input):
    kind: ContactKind
    value: ContactValue = Field(
        description="Email, phone in any format, WeChat ID, the address line or an identity document number"
    )
    label: ShortLine | None = None
    country: Country | None = None
    region: ShortLine | None = None
    city: ShortLine | None = None
    district: ShortLine | None = None
    postal_code: Annotated[str, StringConstraints(max_length=20, pattern=r"^[A-Za-z0-9 \-]*$")] | None = None
    is_primary: bool = False
    is_verified: bool = False


class ContactPointUpdate(Patch):
    value: ContactValue | None = None
    label: ShortLine | None = None
    country: Country | None = None
    region: ShortLine | None = None
    city: ShortLine | None = None
    district: Line | None = None
    postal_code: Annotated[str, StringConstraints(max_length=20, pattern=r"^[A-Za-z0-9 \-]*$")] | None = None
    is_primary: bool | None = None
    is_verified: bool | None = None


class ContactPointRead(Output):
    id: int
    customer_id: int | None = None
    kind: str | None = None
    label: str | None = None
    value: str | None = None
    value_normalized: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    district: str | None = None
    postal_code: str | None = None
    is_primary: bool | None = None
    is_verified: bool | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None
