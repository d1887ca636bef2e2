"""Data-subject requests: one case per request, with legal deadlines, assignment and execution.

Workflow::

    received ──verify──▶ verified ──start──▶ in_progress ──complete──▶ completed
        └───────────────────┴──────────────────┴──────reject (reason)──▶ rejected

Deadlines follow the case's jurisdiction (settings ``RAPPORT_DSR_*``): PIPL 15 days, GDPR one
calendar month from receipt; one extension is allowed, with a reason (PIPL 15 more days, GDPR
two more months). Completing a case carries the request out in the same transaction:

- ``delete``: :func:`rapport.privacy.erasure.erase_customer`;
- ``access`` and ``port``: :func:`rapport.privacy.portability.export_customer`, kept on the case
  for ``RAPPORT_DSR_EXPORT_DAYS`` and downloadable as JSON or CSV;
- ``restrict``: ``rapport.privacy.consent.set_restriction``; ``withdraw_consent``:
  ``rapport.privacy.consent.withdraw`` for the case's purpose;
- ``correct``: the handler corrects the record through the normal API first; completing needs a
  resolution saying what was changed.

Roles: admin and crm_specialist handle every case, a team lead the cases of the team's
customers; sales and service reps may open a case for a customer they can see, nothing more.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from rapport.access.policy import Action, Role
from rapport.access.principal import SYSTEM, Principal
from rapport.access.records import Records, Row
from rapport.access.specs import CUSTOMER, DATA_SUBJECT_REQUEST, USER
from rapport.config import Settings, get_settings
from rapport.errors import Conflict, InvalidInput, NotFound, PreconditionFailed, invalid_field
from rapport.http import dumps
from rapport.models import DataSubjectRequest
from rapport.models.base import utcnow
from rapport.privacy import consent
from rapport.privacy.common import records
from rapport.privacy.erasure import erase_customer
from rapport.privacy.portability import export_customer


class RequestKind(StrEnum):
    access = "access"  # see / get a copy (PIPL art. 45, GDPR art. 15)
    correct = "correct"  # rectification (PIPL art. 46, GDPR art. 16)
    delete = "delete"  # erasure (PIPL art. 47, GDPR art. 17)
    port = "port"  # portability (PIPL art. 45, GDPR art. 20)
    restrict = "restrict"  # restriction (PIPL art. 44, GDPR art. 18)
    withdraw_consent = "withdraw_consent"  # PIPL art. 15, GDPR art. 7(3)


class RequestStatus(StrEnum):
    received = "received"
    verified = "verified"
    in_progress = "in_progress"
    completed = "completed"
    rejected = "rejected"


class Jurisdiction(StrEnum):
    PIPL = "PIPL"
    GDPR = "GDPR"


OPEN = (RequestStatus.received, RequestStatus.verified, RequestStatus.in_progress)
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.received: frozenset({RequestStatus.verified, RequestStatus.rejected}),
    RequestStatus.verified: frozenset({RequestStatus.in_progress, RequestStatus.rejected}),
    RequestStatus.in_progress: frozenset({RequestStatus.completed, RequestStatus.rejected}),
    RequestStatus.completed: frozenset(),
    RequestStatus.rejected: frozenset(),
}
HANDLER_ROLES = frozenset({Role.admin, Role.crm_specialist, Role.team_lead})

OverdueHook = Callable[[Session, Row], None]
OVERDUE_HOOKS: list[OverdueHook] = []
"""Notification channels (mail, chat, ticketing) register here; each overdue case is passed once."""

SPEC = DATA_SUBJECT_REQUEST
_T = SPEC.table


# -- deadlines ------------------------------------------------------------------------------------


def add_months(at: dt.datetime, months: int) -> dt.datetime:
    """The same day ``months`` later, or the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def due_date(jurisdiction: Jurisdiction, received_at: dt.datetime, settings: Settings) -> dt.datetime:
    if jurisdiction is Jurisdiction.GDPR:
        return add_months(received_at, settings.dsr_deadline_months_gdpr)
    return received_at + dt.timedelta(days=settings.dsr_deadline_days_pipl)


def extended_due(jurisdiction: Jurisdiction, due_at: dt.datetime, settings: Settings) -> dt.datetime:
    if jurisdiction is Jurisdiction.GDPR:
        return add_months(due_at, settings.dsr_extension_months_gdpr)
    return due_at + dt.timedelta(days=settings.dsr_extension_days_pipl)


# -- opening --------------------------------------------------------------------------------------


def create(
    recs: Records,
    customer_id: int,
    kind: RequestKind,
    *,
    channel: str,
    details: str | None,
    jurisdiction: Jurisdiction | None = None,
    purpose: str | None = None,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
) -> int:
    """Open a case for a customer the caller can see; returns its id."""
    settings = settings or get_settings()
    recs.require(SPEC, Action.create)
    # Like every other reference in a body: 422 whether the customer is missing or out of scope.
    c = CUSTOMER.table
    if recs.conn.execute(select(c.c.id).where(c.c.id == customer_id, recs.visible(CUSTOMER))).first() is None:
        raise invalid_field("customer_id", f"no customer {customer_id} that you can see", "reference")
    if kind is RequestKind.withdraw_consent and not purpose:
        raise invalid_field("purpose", "withdraw_consent needs the consent purpose withdrawn", "missing")
    if kind is not RequestKind.withdraw_consent and purpose:
        raise invalid_field("purpose", "only withdraw_consent takes a purpose", "unexpected")
    now = now or utcnow()
    law = jurisdiction or Jurisdiction(settings.dsr_jurisdiction)
    p = recs.principal
    new_id = int(
        recs.conn.execute(
            insert(_T)
            .values(
                customer_id=customer_id,
                kind=kind.value,
                status=RequestStatus.received.value,
                jurisdiction=law.value,
                channel=channel,
                details=details,
                purpose=purpose,
                received_at=now,
                due_at=due_date(law, now, settings),
                opened_by_id=p.user_id if p.is_person else None,
                created_at=now,
                updated_at=now,
                version=1,
            )
            .returning(_T.c.id)
        ).scalar_one()
    )
    recs.audit(
        "create",
        SPEC.name,
        new_id,
        fields=["customer_id", "kind", "channel", "details", "purpose"],
        details={"customer_id": customer_id, "kind": kind.value, "jurisdiction": law.value},
    )
    return new_id


def open_request(
    session: Session,
    customer_id: int,
    kind: RequestKind,
    *,
    channel: str,
    details: str | None,
    actor: Principal | None,
    jurisdiction: Jurisdiction | None = None,
    purpose: str | None = None,
    now: dt.datetime | None = None,
) -> DataSubjectRequest:
    """Contract entry point: ``actor`` None means the person asked directly (e.g. a web form)."""
    recs = records(session, actor or SYSTEM)
    new_id = create(
        recs,
        customer_id,
        kind,
        channel=channel,
        details=details,
        jurisdiction=jurisdiction,
        purpose=purpose,
        now=now,
    )
    found = session.get(DataSubjectRequest, new_id)
    assert found is not None
    return found


# -- handling -------------------------------------------------------------------------------------


def get(recs: Records, request_id: int) -> Row:
    return recs.get(SPEC, request_id)


def _current(recs: Records, request_id: int, action: Action, version: int | None) -> Row:
    recs.locate(SPEC, request_id, action)
    row = recs.conn.execute(select(_T).where(_T.c.id == request_id)).mappings().one()
    if version is not None and row["version"] != version:
        raise PreconditionFailed(f"request {request_id} was changed by someone else; reload it")
    return dict(row)


def _write(recs: Records, row: Row, values: dict[str, Any], action: str, now: dt.datetime) -> Row:
    done = recs.conn.execute(
        update(_T)
        .where(_T.c.id == row["id"], _T.c.version == row["version"])
        .values(**values, updated_at=now, version=_T.c.version + 1)
    ).rowcount
    if done == 0:
        raise PreconditionFailed(f"request {row['id']} was changed by someone else; reload it")
    recs.audit(action, SPEC.name, row["id"], fields=sorted(values))
    return recs.get(SPEC, row["id"], audit_action=None)


def transition(
    recs: Records,
    request_id: int,
    to: RequestStatus,
    *,
    version: int | None,
    resolution: str | None = None,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
) -> Row:
    """Move a case along the workflow; completing it carries the request out."""
    now = now or utcnow()
    row = _current(recs, request_id, Action.update, version)
    current = RequestStatus(row["status"])
    if to not in TRANSITIONS[current]:
        raise Conflict(f"a {current.value} request cannot become {to.value}")
    values: dict[str, Any] = {"status": to.value}
    if to is RequestStatus.verified:
        values["verified_at"] = now
    elif to is RequestStatus.rejected:
        if not resolution or not resolution.strip():
            raise invalid_field("resolution", "a rejection needs the reason told to the person", "missing")
        values.update(resolution=resolution, completed_at=now)
    elif to is RequestStatus.completed:
        values.update(_execute(recs, row, resolution, now, settings or get_settings()))
        values["completed_at"] = now
    return _write(recs, row, values, f"request_{to.value}", now)


def _execute(
    recs: Records, row: Row, resolution: str | None, now: dt.datetime, settings: Settings
) -> dict[str, Any]:
    kind, cid, actor = RequestKind(row["kind"]), row["customer_id"], recs.principal
    reason = f"dsr:{row['id']}"
    session = recs.session
    if kind is RequestKind.delete:
        report = erase_customer(session, cid, actor=actor, reason=reason)
        # The erasure cleared this case's free text with the rest; the outcome is a fixed phrase.
        changed = sum(n for key, n in report.counts.items() if key != "orders_detached")
        return {"resolution": f"erased: {changed} rows cleared or deleted besides the person's record"}
    if kind in (RequestKind.access, RequestKind.port):
        export = export_customer(session, cid, actor=actor)
        return {
            "export_body": dumps(export),
            "export_expires_at": now + dt.timedelta(days=settings.dsr_export_days),
            "resolution": resolution or "export produced",
        }
    if kind is RequestKind.restrict:
        consent.set_restriction(session, cid, restricted=True, reason=reason, actor=actor)
        return {"resolution": resolution or "processing restricted"}
    if kind is RequestKind.withdraw_consent:
        consent.withdraw(
            session, cid, consent.Purpose(row["purpose"]), source="dsr", evidence=reason, actor=actor
        )
        return {"resolution": resolution or f"consent withdrawn: {row['purpose']}"}
    if not resolution or not resolution.strip():
        raise invalid_field("resolution", "say what was corrected", "missing")
    return {"resolution": resolution}


def extend(
    recs: Records,
    request_id: int,
    *,
    reason: str,
    version: int | None,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
) -> Row:
    """Push the deadline once (PIPL: 15 days, GDPR: two months), with the reason told to the person."""
    now = now or utcnow()
    row = _current(recs, request_id, Action.update, version)
    if RequestStatus(row["status"]) not in OPEN:
        raise Conflict(f"a {row['status']} request has no deadline to extend")
    if row["extended_at"] is not None:
        raise Conflict("the deadline was extended once already; the law allows one extension")
    if not reason.strip():
        raise invalid_field("reason", "an extension needs a reason", "missing")
    law = Jurisdiction(row["jurisdiction"])
    due = extended_due(law, row["due_at"], settings or get_settings())
    return _write(
        recs,
        row,
        {"due_at": due, "extended_at": now, "extension_reason": reason, "overdue_notified_at": None},
        "request_extend",
        now,
    )


def assign(recs: Records, request_id: int, assignee_id: int, *, version: int | None) -> Row:
    """Give the case to a staff member who may handle privacy requests."""
    row = _current(recs, request_id, Action.assign, version)
    u = USER.table
    user = recs.conn.execute(select(u.c.role, u.c.is_active).where(u.c.id == assignee_id)).first()
    if user is None or not user.is_active or Role(user.role) not in HANDLER_ROLES:
        raise invalid_field(
            "assignee_id", "must be an active admin, crm_specialist or team_lead", "reference"
        )
    return _write(recs, row, {"assignee_id": assignee_id}, "assign", utcnow())


def export_of(recs: Records, request_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """The export a completed access or port case produced, while it is kept."""
    recs.get(SPEC, request_id, audit_action=None)
    recs.require(SPEC, Action.update)  # handlers hand the export over; openers do not
    row = recs.conn.execute(
        select(_T.c.export_body, _T.c.export_expires_at, _T.c.customer_id).where(_T.c.id == request_id)
    ).one()
    if row.export_body is None or (row.export_expires_at and row.export_expires_at <= (now or utcnow())):
        raise NotFound(f"request {request_id} has no export (not produced, expired or erased)")
    recs.audit("export", SPEC.name, request_id, details={"customer_id": row.customer_id})
    data: dict[str, Any] = orjson.loads(row.export_body)
    return data


# -- overdue --------------------------------------------------------------------------------------


def overdue_rows(recs: Records, now: dt.datetime | None = None) -> list[Row]:
    """Open cases past their deadline that the caller may see, most overdue first."""
    now = now or utcnow()
    stmt = (
        recs.select(SPEC)
        .where(_T.c.status.in_([s.value for s in OPEN]), _T.c.due_at < now)
        .order_by(_T.c.due_at, _T.c.id)
    )
    rows = [dict(r) for r in recs.conn.execute(stmt).mappings()]
    if rows:
        recs.audit("list", SPEC.name, None, details={"ids": [r["id"] for r in rows], "overdue": True})
    return rows


def notify_overdue(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Alert once per overdue case (audit event + every registered hook); returns the case ids.

    Run by the scheduler (``rapport privacy requests --overdue --notify``, or
    :func:`rapport.privacy.tasks.notify_overdue_requests`) as the system principal.
    """
    now = now or utcnow()
    recs = records(session, SYSTEM)
    stmt = (
        select(_T)
        .where(
            _T.c.status.in_([s.value for s in OPEN]),
            _T.c.due_at < now,
            _T.c.overdue_notified_at.is_(None),
        )
        .order_by(_T.c.due_at, _T.c.id)
    )
    rows = [dict(r) for r in session.execute(stmt).mappings()]
    for row in rows:
        recs.audit(
            "overdue",
            SPEC.name,
            row["id"],
            details={"due_at": row["due_at"].isoformat(), "assignee_id": row["assignee_id"]},
        )
        for hook in OVERDUE_HOOKS:
            hook(session, row)
    if rows:
        session.execute(
            update(_T).where(_T.c.id.in_([r["id"] for r in rows])).values(overdue_notified_at=now)
        )
    return [r["id"] for r in rows]


def validate_kind(kind: str) -> RequestKind:
    try:
        return RequestKind(kind)
    except ValueError:
        raise InvalidInput(f"kind: one of {[k.value for k in RequestKind]}") from None
