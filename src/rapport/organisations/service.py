"""Organisations (companies customers belong to): custom attributes, name search, their people."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement

from rapport.access.policy import Action
from rapport.access.records import Page, Records
from rapport.access.specs import CUSTOMER, ORGANISATION
from rapport.crud import Resource, equal_filters, refuse_nulls, starts_with
from rapport.customers.service import check_attributes, customers
from rapport.organisations.schemas import (
    OrganisationCreate,
    OrganisationFilters,
    OrganisationRead,
    OrganisationUpdate,
)
from rapport.schemas import ListParams

_NOT_NULL = ("name", "lifecycle_stage", "attributes")


class Organisations(Resource):
    spec = ORGANISATION
    read = OrganisationRead
    create = OrganisationCreate
    update = OrganisationUpdate
    filters = OrganisationFilters
    tag = "organisations"

    def where(self, recs: Records, f: OrganisationFilters) -> Sequence[ColumnElement[bool]]:
        t = ORGANISATION.table
        clauses = equal_filters(t, f, "lifecycle_stage", "region", "owner_id", "team_id")
        if f.q:
            clauses.append(starts_with(t.c.name, f.q))
        return clauses

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        values: dict[str, Any] = body.model_dump()
        values["attributes"] = check_attributes(recs, "organisation", body.attributes)
        return values

    def prepare_update(self, recs: Records, record_id: int, body: Any) -> dict[str, Any]:
        values: dict[str, Any] = body.changes()
        refuse_nulls(values, *_NOT_NULL)
        if "attributes" in values:
            # 404/403 before any verdict on the attributes of a record the caller cannot change.
            self.locate(recs, record_id, Action.update)
            values["attributes"] = check_attributes(recs, "organisation", values["attributes"])
        return values

    def people(self, recs: Records, record_id: int, params: ListParams) -> Page:
        """The organisation's customers, each under the caller's own customer scope and masks."""
        recs.get(ORGANISATION, record_id)
        page = recs.page(
            CUSTOMER,
            sort=params.sort or customers.default_sort,
            cursor=params.cursor,
            limit=params.limit,
            where=[CUSTOMER.table.c.organisation_id == record_id],
        )
        page.items = customers.expand(recs, page.items)
        return page


organisations = Organisations()
