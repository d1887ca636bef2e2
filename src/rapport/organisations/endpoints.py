"""Organisation routes: standard CRUD plus the organisation's people."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from rapport.crud import RecordId, mount, problem_responses
from rapport.customers.schemas import CustomerRead
from rapport.deps import Recs
from rapport.http import JSON
from rapport.organisations.service import organisations
from rapport.schemas import ListParams, Output

router = APIRouter()
mount(router, organisations)


class PeoplePage(Output):
    items: list[CustomerRead]
    next_cursor: str | None = None
    limit: int


@router.get(
    "/organisations/{record_id}/people",
    response_model=PeoplePage,
    tags=["organisations"],
    summary="Customers who belong to an organisation (within your own customer scope)",
    operation_id="list_organisation_people",
    responses=problem_responses(401, 403, 404, 422),
)
def organisation_people(record_id: RecordId, recs: Recs, params: Annotated[ListParams, Query()]) -> Response:
    page = organisations.people(recs, record_id, params)
    return JSON({"items": page.items, "next_cursor": page.next_cursor, "limit": page.limit})
