"""Privacy complaints (PIPL art. 50, GDPR art. 12(3)): received, acknowledged, resolved, on time.

Due dates come from the settings when the complaint is received; the overdue list shows every
complaint past its next deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select

from rapport.access.policy import Action
from rapport.access.records import Records, Row
from rapport.access.specs import CUSTOMER, ResourceSpec
from rapport.config import get_settings
from rapport.crud import Resource, equal_filters
from rapport.customers.service import check_reference
from rapport.errors import Conflict
from rapport.models.base import table_of, utcnow
from rapport.models.privacy import PrivacyComplaint
from rapport.privacy.schemas import ComplaintCreate, ComplaintFilters, ComplaintRead

COMPLAINT = ResourceSpec(
    "privacy_complaint",
    table_of(PrivacyComplaint),
    "global",
    tuple(c.name for c in table_of(PrivacyComplaint).columns),
    personal=True,
    sortable=("id", "received_at", "resolve_due_at"),
    path="privacy-complaints",
)


class Complaints(Resource):
    spec = COMPLAINT
    read = ComplaintRead
    create = ComplaintCreate
    filters = ComplaintFilters
    deletable = False  # closed by resolution; the record is the evidence of handling
    tag = "privacy-complaints"

    def where(self, recs: Records, f: ComplaintFilters) -> Sequence[ColumnElement[bool]]:
        return equal_filters(COMPLAINT.table, f, "status", "customer_id")

    def prepare_create(self, recs: Records, body: Any, parent_id: int | None) -> dict[str, Any]:
        check_reference(recs, "customer_id", CUSTOMER, body.customer_id)
        settings = get_settings()
        now = utcnow()
        return {
            "customer_id": body.customer_id,
            "channel": body.channel,
            "summary": body.summary,
            "status": "received",
            "received_at": now,
            "acknowledge_due_at": now + dt.timedelta(days=settings.complaint_acknowledge_days),
            "resolve_due_at": now + dt.timedelta(days=settings.complaint_resolve_days),
        }

    def transition(
        self, recs: Records, record_id: int, version: int, to: str, resolution: str | None = None
    ) -> Row:
        row = self.locate(recs, record_id, Action.update, version)
        allowed = {"acknowledged": ("received",), "resolved": ("received", "acknowledged")}[to]
        if row.get("status") not in allowed:
            raise Conflict(f"complaint {record_id} is {row.get('status')}; it cannot become {to}")
        now = utcnow()
        values: dict[str, Any] = {"status": to, "handler_id": recs.principal.user_id}
        if to == "acknowledged" or row.get("acknowledged_at") is None:
            values["acknowledged_at"] = now
        if to == "resolved":
            values["resolved_at"] = now
            values["resolution"] = resolution
        recs.update(COMPLAINT, record_id, values, version)
        return self.get_after_write(recs, record_id)

    def overdue(self, recs: Records, now: dt.datetime | None = None, limit: int = 200) -> list[Row]:
        """Open complaints past their next deadline, the most overdue first."""
        grant = recs.grant(COMPLAINT, Action.read)
        t = COMPLAINT.table
        now = now or utcnow()
        late = or_(
            and_(t.c.status == "received", t.c.acknowledge_due_at < now),
            and_(t.c.status != "resolved", t.c.resolve_due_at < now),
        )
        stmt = (
            select(*recs.readable_columns(COMPLAINT, grant))
            .where(late, recs.visible(COMPLAINT, grant))
            .order_by(t.c.acknowledge_due_at, t.c.id)
            .limit(limit)
        )
        rows = [dict(r) for r in recs.session.execute(stmt).mappings()]
        if rows:
            recs.audit(
                "list", COMPLAINT.name, None, details={"ids": [r["id"] for r in rows], "overdue": True}
            )
        return rows


complaints = Complaints()
