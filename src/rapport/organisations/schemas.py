from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from rapport.customers.schemas import Attributes, Stage
from rapport.schemas import Input, ListParams, Output, Patch, RefId
from rapport.text import Line, Name, SearchText, ShortLine, clean_text

SizeBand = Literal["1-9", "10-49", "50-249", "250-999", "1000+"]


def _web_address(value: str) -> str:
    value = clean_text(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError("must be an http:// or https:// address")
    return value


Website = Annotated[str, StringConstraints(max_length=300), AfterValidator(_web_address)]


class _OrganisationFields(Input):
    name_latin: Line | None = None
    industry: ShortLine | None = None
    size_band: SizeBand | None = None
    website: Website | None = None
    region: ShortLine | None = None
    city: ShortLine | None = None


class OrganisationCreate(_OrganisationFields):
    name: Name = Field(description="Registered or trading name, e.g. 上海星辰贸易有限公司")
    lifecycle_stage: Stage = "lead"
    attributes: Attributes = Field(default_factory=dict, max_length=100)


class OrganisationUpdate(_OrganisationFields, Patch):
    name: Name | None = None
    lifecycle_stage: Stage | None = None
    attributes: Attributes | None = Field(default=None, max_length=100)


class OrganisationFilters(ListParams):
    q: SearchText | None = Field(default=None, description="Start of the name")
    lifecycle_stage: Stage | None = None
    region: ShortLine | None = None
    owner_id: RefId | None = None
    team_id: RefId | None = None


class OrganisationRead(Output):
    id: int
    name: str | None = None
    name_latin: str | None = None
    industry: str | None = None
    size_band: str | None = None
    website: str | None = None
    region: str | None = None
    city: str | None = None
    lifecycle_stage: str | None = None
    owner_id: int | None = None
    team_id: int | None = None
    attributes: dict[str, Any] | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None
