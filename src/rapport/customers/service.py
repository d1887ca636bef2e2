"""Customer business rules: references, custom attributes, tags, search and the 360 view."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, select

from rapport.access.policy import PSEUDONYMISED, Action
from rapport.access.records import Records, Row
from rapport.access.specs import (
    CONTACT_POINT,
    CUSTOMER,
    INTERACTION,
    ORDER,
    ORGANISATION,
    TASK,
    TEAM,
    USER,
)
from rapport.config import get_settings
from rapport.contacts.service import contact_points, contact_values, demote_other_primaries
from rapport.crud import Resource, equal_filters, refuse_nulls
from rapport.customers import repository as repo
from rapport.customers.schemas import (
    CustomerCreate,
    CustomerExportParams,
    CustomerFilters,
    CustomerRead,
    CustomerUpdate,
)
from rapport.customers.search import looks_like_phone, query_term
from rapport.errors import Forbidden, InvalidInput, NotFound
from rapport.exports.cells import csv_cell
from rapport.models import CustomField
from rapport.privacy import consent
from rapport.privacy.consent import not_restricted
from rapport.text import normalise_email, normalise_phone
from rapport.webhooks import service as webhooks


def _invalid(field: str, message: str, kind: str = "value_error") -> InvalidInput:
    return InvalidInput(
        f"{field}: {message}",
        errors=[{"loc": ["body", *field.split(".")], "field": field, "message": message, "type": kind}],
    )


def check_attributes(recs: Records, entity: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Custom attributes must be declared, typed and, where the field says so, present."""
    defs = {
        d.key: d
        for d in recs.session.execute(select(CustomField).where(CustomField.entity == entity)).scalars()
    }
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        d = defs.get(key)
        if d is None:
            raise _invalid(
                f"attributes.{key}",
                "no custom field with this key; define it first",
                "unknown_attribute",
            )
        if value is None:
            continue
        ok = {
            "text": isinstance(value, str),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "choice": isinstance(value, str) and value in d.choices,
            "date": isinstance(value, str) and _is_iso_date(value),
        }.get(d.field_type, False)
        if not ok:
            want = f"one of {d.choices}" if d.field_type == "choice" else d.field_type
            raise _invalid(f"attributes.{key}", f"must be {want}", "attribute_type")
        out[key] = value
    # Attributes are written as a whole (create, or PATCH of "attributes"), so every required
    # field must be in the new value.
    for key in sorted(k for k, d in defs.items() if d.required and out.get(k) is None):
        raise _invalid(f"attributes.{key}", "is required", "missing")
    return out


def _is_iso_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def check_reference(recs: Records, field: str, spec: Any, record_id: int | None) -> None:
    if record_id is None:
        return
    found = recs.session.execute(
        select(spec.table.c.id).where(spec.table.c.id == record_id, recs.visible(spec))
    ).first()
    if found is None:
        raise _invalid(field, f"no {spec.name} {record_id} that you can see", "reference")


# Rows per pseudonymised file when the caller sets no limit (the file is built in memory).
PSEUDONYMISED_PAGE = 10_000


class Customers(Resource):
    spec = CUSTOMER
    read = CustomerRead
    create = CustomerCreate
    update = CustomerUpdate
    filters = CustomerFilters
    tag = "customers"

    def export_where(self, recs: Records, f: CustomerFilters) -> list[ColumnElement[bool]]:
        # A person who restricted processing (PIPL art. 44, GDPR art. 18) leaves every export.
        return [*self.where(recs, f), not_restricted(CUSTOMER.table.c.id)]

    def where(self, recs: Records, f: CustomerFilters) -> Sequence[ColumnElement[bool]]:
        t = CUSTOMER.table
        clauses = equal_filters(
            t, f, "lifecycle_stage", "region", "city", "owner_id", "team_id", "organisation_id"
        )
        if f.tag:
            clauses.append(repo.tag_match(f.tag))
        if f.q:
            clauses.append(self._search(recs, f.q, (f.sort or self.default_sort).lstrip("-")))
        return clauses

    def _search(self, recs: Records, q: str, sort_column: str) -> ColumnElement[bool]:
        hidden_contact = recs.principal.grant("contact_point").hidden
        if "@" in q or looks_like_phone(q):
            if "value_normalized" in hidden_contact or not recs.principal.can("contact_point", Action.read):
                raise Forbidden("your role may not search by phone or email")
            try:
                if "@" in q:
                    return repo.contact_match("email", normalise_email(q))
                return repo.contact_match("phone", normalise_phone(q, get_settings().default_phone_region))
            except ValueError as exc:
                raise InvalidInput(
                    f"q: {exc}",
                    errors=[{"loc": ["query", "q"], "field": "q", "message": str(exc), "type": "search"}],
                ) from None
        if "display_name" in recs.principal.grant("customer").hidden:
            raise Forbidden("your role may not search by name")
        return repo.name_match(recs.session, query_term(q), sort_column)

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        check_reference(recs, "organisation_id", ORGANISATION, body.organisation_id)
        values = body.model_dump(exclude={"tags", "contact_points"})
        values["attributes"] = check_attributes(recs, "customer", body.attributes)
        return values  # type: ignore[no-any-return]

    def prepare_update(self, recs: Records, record_id: int, body: Any) -> dict[str, Any]:
        values = body.changes()
        values.pop("tags", None)
        refuse_nulls(values, "display_name", "lifecycle_stage", "attributes")
        if "organisation_id" in values:
            check_reference(recs, "organisation_id", ORGANISATION, values["organisation_id"])
        if "attributes" in values:
            values["attributes"] = check_attributes(recs, "customer", values["attributes"])
        return values  # type: ignore[no-any-return]

    def after_write(self, recs: Records, row: Row, body: Any) -> None:
        session, cid = recs.session, row["id"]
        names = {"display_name", "family_name", "given_name", "name_latin"}
        if isinstance(body, CustomerCreate) or names & body.model_fields_set:
            current = session.execute(
                select(*(CUSTOMER.table.c[n] for n in sorted(names))).where(CUSTOMER.table.c.id == cid)
            ).one()
            repo.replace_search_terms(session, cid, *current)
        if body.tags is not None:
            repo.replace_tags(session, cid, body.tags)
        # Transactional outbox: the event is queued only if this change commits.
        webhooks.emit(
            session, "customer.created" if isinstance(body, CustomerCreate) else "customer.updated", cid
        )
        if isinstance(body, CustomerCreate):
            for i, cp in enumerate(body.contact_points):
                values = contact_values(cp, cid, ["contact_points", i])
                created = recs.create(CONTACT_POINT, values)
                if cp.is_primary:
                    demote_other_primaries(recs, created["id"])

    def get(self, recs: Records, record_id: int) -> Row:
        try:
            return super().get(recs, record_id)
        except NotFound:
            # A merged id redirects to the survivor (imported here: merge builds on customers).
            from rapport.merge.redirect import redirect_if_merged

            redirect_if_merged(recs, record_id)
            raise

    def expand(self, recs: Records, rows: list[Row]) -> list[Row]:
        tags = repo.tags_by_customer(recs.session, (r["id"] for r in rows))
        for r in rows:
            r["tags"] = tags.get(r["id"], [])
        return rows

    def export_pseudonymised_csv(
        self, recs: Records, params: CustomerExportParams, key: bytes
    ) -> tuple[bytes, str | None]:
        """CSV without direct identifiers: keyed pseudonyms, birth-year bands, regions only."""
        page = recs.pseudonymised_page(
            CUSTOMER,
            key=key,
            cursor=params.cursor,
            limit=params.limit or PSEUDONYMISED_PAGE,
            where=self.export_where(recs, params),
        )
        columns = list(PSEUDONYMISED["customer"])
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in page.items:
            writer.writerow([csv_cell(row.get(c)) for c in columns])
        return ("\ufeff" + out.getvalue()).encode("utf-8"), page.next_cursor

    def view_360(self, recs: Records, customer_id: int, timeline_limit: int = 50) -> dict[str, Any]:
        customer = self.expand(recs, [recs.get(CUSTOMER, customer_id, audit_action="read_360")])[0]
        session, p = recs.session, recs.principal
        contacts: list[Row] = []
        if p.can("contact_point", Action.read):
            stmt = recs.select(CONTACT_POINT).where(CONTACT_POINT.table.c.customer_id == customer_id)
            contacts = recs.fetch(CONTACT_POINT, stmt.order_by(CONTACT_POINT.table.c.id))
        timeline: list[dict[str, Any]] = []
        summary = None
        if p.can("order", Action.read):
            summary = repo.order_summary(session, customer_id, recs.visible(ORDER))
            o = ORDER.table
            stmt = (
                recs.select(ORDER)
                .where(o.c.customer_id == customer_id)
                .order_by(o.c.ordered_at.desc())
                .limit(timeline_limit)
            )
            for r in session.execute(stmt).mappings():
                timeline.append(
                    {
                        "kind": "order",
                        "id": r["id"],
                        "at": r["ordered_at"],
                        "title": r["order_number"],
                        "detail": {
                            "status": r["status"],
                            "channel": r["channel"],
                            "total_amount": r["total_amount"],
                            "currency": r["currency"],
                        },
                    }
                )
        if p.can("interaction", Action.read):
            i = INTERACTION.table
            stmt = (
                recs.select(INTERACTION)
                .where(i.c.customer_id == customer_id)
                .order_by(i.c.occurred_at.desc())
                .limit(timeline_limit)
            )
            for r in session.execute(stmt).mappings():
                detail = {k: r[k] for k in ("direction", "channel", "author_id", "body") if k in r}
                timeline.append(
                    {
                        "kind": r["kind"],
                        "id": r["id"],
                        "at": r["occurred_at"],
                        "title": r.get("subject"),
                        "detail": detail,
                    }
                )
        tasks: list[Row] = []
        if p.can("task", Action.read):
            t = TASK.table
            stmt = (
                recs.select(TASK)
                .where(t.c.customer_id == customer_id)
                .order_by(t.c.id.desc())
                .limit(timeline_limit)
            )
            for r in session.execute(stmt).mappings():
                row = dict(r)
                if row["status"] == "open":
                    tasks.append(row)
                timeline.append(
                    {
                        "kind": "task",
                        "id": row["id"],
                        "at": row["due_at"] or row["created_at"],
                        "title": row.get("title"),
                        "detail": {"status": row["status"], "assignee_id": row["assignee_id"]},
                    }
                )
        consents = None
        if p.can("consent", Action.read):
            consents = consent.summary(session, customer_id, p.grant("consent").hidden)
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        timeline.sort(key=lambda e: (e["at"] or epoch, e["id"]), reverse=True)
        return {
            "customer": customer,
            "contact_points": contacts,
            "order_summary": summary,
            "open_tasks": tasks,
            "timeline": timeline[:timeline_limit],
            "consents": consents,
        }

    def reassign(
        self,
        recs: Records,
        customer_id: int,
        owner_id: int | None,
        team_id: int | None,
        version: int,
    ) -> Row:
        # Scope and permission first: a 422 about the new owner must not reveal the customer exists.
        recs.locate(CUSTOMER, customer_id, Action.assign)
        values: dict[str, Any] = {}
        if owner_id is not None:
            check_reference(recs, "owner_id", USER, owner_id)
            values["owner_id"] = owner_id
        if team_id is not None:
            check_reference(recs, "team_id", TEAM, team_id)
            values["team_id"] = team_id
        if not values:
            raise _invalid("owner_id", "send owner_id, team_id or both", "missing")
        recs.assign(CUSTOMER, customer_id, values, version)
        return self.get_after_write(recs, customer_id)


customers = Customers()

__all__ = ["Customers", "Decimal", "contact_points", "customers"]
