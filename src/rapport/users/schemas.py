from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from rapport.access.policy import Role
from rapport.customers.schemas import Language
from rapport.schemas import Input, ListParams, Output, Patch, RefId
from rapport.text import Email, Name, SearchText, Tag, clean_text

Username = Annotated[str, StringConstraints(pattern=r"^[a-z0-9._-]{3,64}$")]
Password = Annotated[str, StringConstraints(min_length=1, max_length=256)]


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


TeamName = Annotated[
    str, StringConstraints(max_length=100), AfterValidator(clean_text), AfterValidator(_not_blank)
]
Description = Annotated[str, StringConstraints(max_length=500), AfterValidator(clean_text)]


class UserCreate(Input):
    username: Username = Field(description="3-64 of a-z 0-9 . _ -; used to log in")
    display_name: Name | None = Field(default=None, description="Defaults to the username")
    email: Email | None = None
    role: Role
    team_id: RefId | None = None
    preferred_language: Language = "zh-CN"
    password: Password = Field(description="At least 12 characters and not a common password")


class UserUpdate(Patch):
    display_name: Name | None = None
    email: Email | None = None
    role: Role | None = None
    team_id: RefId | None = None
    preferred_language: Language | None = None


class UserFilters(ListParams):
    q: SearchText | None = Field(default=None, description="Start of the username")
    role: Role | None = None
    team_id: RefId | None = None
    is_active: bool | None = None


class UserRead(Output):
    id: int
    username: str | None = None
    display_name: str | None = None
    email: str | None = None
    role: str | None = None
    team_id: int | None = None
    is_active: bool | None = None
    preferred_language: str | None = None
    last_login_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


class TeamCreate(Input):
    name: TeamName
    description: Description | None = None


class TeamUpdate(Patch):
    name: TeamName | None = None
    description: Description | None = None


class TeamRead(Output):
    id: int
    name: str | None = None
    description: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None


Entity = Literal["customer", "organisation"]
FieldType = Literal["text", "number", "date", "boolean", "choice"]
FieldKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Choices = Annotated[list[Tag], Field(min_length=1, max_length=100)]


def _distinct(choices: list[str] | None) -> list[str] | None:
    if choices is not None and len(set(choices)) != len(choices):
        raise ValueError("choices must be distinct")
    return choices


class CustomFieldCreate(Input):
    entity: Entity
    key: FieldKey = Field(description="Attribute name in the record's attributes, unique per entity")
    label: Name
    field_type: FieldType
    choices: Annotated[Choices | None, AfterValidator(_distinct)] = Field(
        default=None, description="Required for, and only for, field_type choice"
    )
    required: bool = False


class CustomFieldUpdate(Patch):
    # Entity, key and type are fixed: stored attribute values were validated against them.
    label: Name | None = None
    choices: Annotated[Choices | None, AfterValidator(_distinct)] = None
    required: bool | None = None


class CustomFieldFilters(ListParams):
    entity: Entity | None = None


class CustomFieldRead(Output):
    id: int
    entity: str | None = None
    key: str | None = None
    label: str | None = None
    field_type: str | None = None
    choices: list[str] | None = None
    required: bool | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    version: int | None = None
