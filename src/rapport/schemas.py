"""Base classes for request and response bodies."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator


class Input(BaseModel):
    """Request bodies: unknown fields are refused, which also blocks mass assignment."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    def changes(self) -> dict[str, Any]:
        """Only the fields the client actually sent (PATCH semantics)."""
        return self.model_dump(exclude_unset=True)


class Patch(Input):
    @model_validator(mode="after")
    def _not_empty(self) -> Patch:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self


class ListParams(Input):
    """Query parameters every list accepts; a resource's filters extend this."""

    sort: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="Sort key; prefix '-' for descending"
    )
    cursor: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="next_cursor of the previous page"
    )
    limit: Annotated[int, Field(ge=1, le=200)] = Field(default=50, description="Page size")


class Output(BaseModel):
    """Response bodies. Fields a caller's role may not read are left out entirely."""

    model_config = ConfigDict(extra="ignore")


class Page(Output):
    next_cursor: str | None = None
    limit: int
