"""Erasure (PIPL art. 47, GDPR art. 17): remove or irreversibly anonymise one person everywhere.

What happens to each place Rapport stores a person (see README "Erasure"):

- ``customer``: the row stays as a tombstone so orders remain countable; every identifying or
  descriptive column is cleared (names become ``[erased]``; birth date, gender, occupation,
  region, city, language, channel, source, employer and custom attributes are emptied), the row
  is marked deleted and ``erased_at`` is set. Owner and team stay: they are staff ids that keep
  the tombstone in the same record scope for the people who handled the case.
- ``customer_tag``, ``contact_point``, ``customer_search_term``: deleted.
- ``interaction``: subject and body cleared (kind, channel and time stay for aggregates).
- ``task``: title replaced by ``[erased]``, description cleared.
- ``sales_order`` / ``order_line``: kept for statutory accounting and aggregates; they point at
  the tombstone, which no longer says whose they were.
- ``idempotency_record``: replayable responses that mention the person (by path, by id or by any
  of their names or contact values) are deleted.
- ``data_subject_request``: the person's cases keep kind, dates and status as proof the request
  was answered; their free text and any produced export are cleared.
- ``customer_merge`` / ``customer_alias``: the sealed before-images and reason of every merge the
  person took part in are cleared (the record keeps ids only and can no longer be undone), their
  aliases deleted, and the records merged into them (the same person) are erased as well.
- ``audit_event``: untouched, and it need not be touched: events hold record ids and field names,
  never values (tests/privacy/test_erasure.py proves no planted value survives anywhere in the
  database file), so the hash chain stays valid.
- the analytics store and registered hooks (caches, files) are told to forget the id.

The deleting statements run in the caller's unit; once it commits,
:func:`rapport.db.compact_storage` makes the deleted bytes unrecoverable from the files.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from rapport.access.policy import Action, Scope
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER
from rapport.analytics.store import forget_in_store
from rapport.config import get_settings
from rapport.errors import Forbidden, NotFound
from rapport.merge.erasure import forget_merges
from rapport.models import (
    ContactPoint,
    Customer,
    CustomerSearchTerm,
    CustomerTag,
    DataSubjectRequest,
    IdempotencyRecord,
    Interaction,
    Order,
    Task,
)
from rapport.models.base import table_of, utcnow
from rapport.privacy.common import records
from rapport.security.keyring import keyring_for, open_rows, open_stored

ERASED = "[erased]"
# Reasons that are machine codes may enter the audit chain; free text never does (it could name
# the person, and the chain can never be changed again).
_REASON_CODE = re.compile(r"^[a-z0-9_.:-]{1,64}$")

# The columns erasure clears on the customer row (display_name is overwritten, not cleared).
CLEARED_CUSTOMER_COLUMNS = (
    "family_name",
    "given_name",
    "name_latin",
    "gender",
    "birth_date",
    "occupation",
    "region",
    "city",
    "preferred_language",
    "preferred_channel",
    "acquisition_source",
    "organisation_id",
)

ErasureHook = Callable[[Session, int], str]
"""Called with the unit and the customer id; returns a short note for the report."""

ERASURE_HOOKS: list[ErasureHook] = []
"""Caches, files or other stores that hold copies of a person register a hook here."""


def _hooks() -> list[ErasureHook]:
    """The registered hooks plus the domains that keep copies of a person in tables of their own.

    Imported here, not at module level: those domains import this module, and an erasure run
    from the CLI must not depend on which modules happened to be imported before.
    """
    from rapport.dedup.repository import forget_customer as forget_pairs
    from rapport.ingest import jobs  # registers its hook on import

    del jobs
    return [*ERASURE_HOOKS, forget_pairs]


@dataclass(slots=True)
class ErasureReport:
    customer_id: int
    erased_at: dt.datetime
    already_erased: bool
    counts: dict[str, int] = field(default_factory=dict)
    analytics: str = "not run"
    hooks: list[str] = field(default_factory=list)
    # Other customers' interactions and tasks whose text names this person (a name or contact
    # value): free text cannot be erased automatically, so the handler reviews these ids.
    mentions_elsewhere: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["erased_at"] = self.erased_at.isoformat()
        return out


def _check_actor(recs: Records, customer: Any) -> None:
    """The actor must be allowed to delete customers, and this one must be in their scope."""
    p = recs.principal
    grant = p.grant(CUSTOMER.name)
    in_scope = grant.allows(Action.read) and (
        grant.scope is Scope.all
        or customer.owner_id == p.user_id
        or (grant.scope is Scope.team and p.team_id is not None and customer.team_id == p.team_id)
    )
    if not in_scope:
        recs.audit("erase", CUSTOMER.name, customer.id, outcome="denied")
        raise NotFound(f"customer {customer.id} not found")
    if not grant.allows(Action.delete):
        recs.audit("erase", CUSTOMER.name, customer.id, outcome="denied")
        raise Forbidden("your role may not erase customer records")


def _identifying_values(session: Session, customer: Any) -> list[bytes]:
    names = [customer.display_name, customer.family_name, customer.given_name, customer.name_latin]
    cp = table_of(ContactPoint)
    contacts = [
        dict(r)
        for r in session.execute(
            select(cp.c.id, cp.c.value, cp.c.value_normalized).where(cp.c.customer_id == customer.id)
        ).mappings()
    ]
    open_rows(session, cp, contacts)  # stored sealed; the mentions are searched for in the clear
    values = {v for v in names if v and v != ERASED}
    values |= {row[k] for row in contacts for k in ("value", "value_normalized") if row[k]}
    # Short values ("王") would match unrelated responses; three characters is the useful floor.
    return sorted({v.encode() for v in values if len(v) >= 3})


def _mentions(body: bytes | None, path: str, customer_id: int, values: list[bytes]) -> bool:
    if re.search(rf"/customers/{customer_id}(/|$)", path):
        return True
    if not body:
        return False
    if any(v in body for v in values):
        return True
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(data, dict):
        return False
    if data.get("customer_id") == customer_id:
        return True
    # A customer record as returned by a create or an import: its id is the person's.
    is_customer = path.rstrip("/").endswith(("/customers", "/privacy/imports")) or "display_name" in data
    return bool(is_customer and data.get("id") == customer_id)


def _forget_idempotency(session: Session, customer_id: int, values: list[bytes]) -> int:
    t = table_of(IdempotencyRecord)
    # Keys live 24 hours (rapport db prune), so this scan stays small.
    rows = session.execute(select(t.c.id, t.c.path, t.c.response_body)).all()
    ring = keyring_for(session) if rows else None
    # Stored responses are sealed at rest; the person's values are looked for in the clear.
    doomed = [
        r.id
        for r in rows
        if ring is not None
        and _mentions(
            open_stored(ring, "idempotency_record", "response_body", r.id, r.response_body),
            r.path,
            customer_id,
            values,
        )
    ]
    if doomed:
        session.execute(delete(t).where(t.c.id.in_(doomed)))
    return len(doomed)


def _mentions_elsewhere(session: Session, customer_id: int, values: list[bytes]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    if not values:
        return found
    for name, table, columns in (
        ("interaction", table_of(Interaction), ("subject", "body")),
        ("task", table_of(Task), ("title", "description")),
    ):
        likes = [table.c[col].contains(v.decode(), autoescape=True) for col in columns for v in values]
        ids = (
            session.execute(
                select(table.c.id).where(table.c.customer_id != customer_id, or_(*likes)).order_by(table.c.id)
            )
            .scalars()
            .all()
        )
        if ids:
            found[name] = list(ids)
    return found


def _forget_analytics(customer_ids: list[int], path: Path | None) -> str:
    # The store is a derived copy: its next sync drops customers marked deleted, which erasure
    # does, so a store that is busy in another process is cleaned then rather than failing here.
    store_path = path or get_settings().resolved_analytics_path
    try:
        removed = forget_in_store(store_path, customer_ids)
    except duckdb.Error:
        return "analytics store busy: removed at its next sync"
    return f"forgotten: {removed} rows"


def erase_customer(
    session: Session,
    customer_id: int,
    *,
    actor: Principal,
    reason: str,
    analytics_path: Path | None = None,
    merged_into: int | None = None,
) -> ErasureReport:
    """Erase one person in the caller's unit (flushes, never commits); idempotent.

    ``merged_into``: internal, set when erasing a record that was merged into the customer being
    erased (same person; the actor's scope was checked on the survivor).
    """
    recs = records(session, actor)
    c = table_of(Customer)
    customer = session.execute(select(c).where(c.c.id == customer_id)).first()
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    if merged_into is None:
        _check_actor(recs, customer)
    now = utcnow()
    report = ErasureReport(customer_id, now, already_erased=customer.erased_at is not None)
    values = _identifying_values(session, customer)
    report.mentions_elsewhere = _mentions_elsewhere(session, customer_id, values)
    counts = report.counts

    def run(key: str, stmt: Any) -> None:
        counts[key] = int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]

    run("contact_points", delete(table_of(ContactPoint)).where(ContactPoint.customer_id == customer_id))
    run("tags", delete(table_of(CustomerTag)).where(CustomerTag.customer_id == customer_id))
    run(
        "search_terms",
        delete(table_of(CustomerSearchTerm)).where(CustomerSearchTerm.customer_id == customer_id),
    )
    i = table_of(Interaction)
    run(
        "interactions",
        update(i)
        .where(i.c.customer_id == customer_id, or_(i.c.subject.is_not(None), i.c.body.is_not(None)))
        .values(subject=None, body=None, updated_at=now, version=i.c.version + 1),
    )
    t = table_of(Task)
    run(
        "tasks",
        update(t)
        .where(t.c.customer_id == customer_id, or_(t.c.title != ERASED, t.c.description.is_not(None)))
        .values(title=ERASED, description=None, updated_at=now, version=t.c.version + 1),
    )
    o = table_of(Order)
    counts["orders_detached"] = int(
        session.execute(
            select(func.count()).select_from(o).where(o.c.customer_id == customer_id)
        ).scalar_one()
    )
    d = table_of(DataSubjectRequest)
    run(
        "request_texts",
        update(d)
        .where(
            d.c.customer_id == customer_id,
            or_(
                d.c.details.is_not(None),
                d.c.extension_reason.is_not(None),
                d.c.resolution.is_not(None),
                d.c.export_body.is_not(None),
            ),
        )
        .values(
            details=None, extension_reason=None, resolution=None, export_body=None, export_expires_at=None
        ),
    )
    counts["idempotency_records"] = _forget_idempotency(session, customer_id, values)
    session.execute(
        update(c)
        .where(c.c.id == customer_id)
        .values(
            display_name=ERASED,
            attributes={},
            deleted_at=func.coalesce(c.c.deleted_at, now),
            erased_at=func.coalesce(c.c.erased_at, now),
            updated_at=now,
            version=c.c.version + 1,
            **dict.fromkeys(CLEARED_CUSTOMER_COLUMNS),
        )
    )
    merges_cleared, merged_records = forget_merges(session, customer_id)
    if merges_cleared or merged_records:
        # Only when merges were involved, so reports of people never merged keep their shape.
        counts["merges_cleared"] = merges_cleared
        counts["merged_records"] = len(merged_records)
    for merged_id in merged_records:
        erase_customer(
            session,
            merged_id,
            actor=actor,
            reason=f"merged_into:{customer_id}",
            analytics_path=analytics_path,
            merged_into=customer_id,
        )
    report.analytics = _forget_analytics([customer_id], analytics_path)
    report.hooks = [hook(session, customer_id) for hook in _hooks()]
    recs.audit(
        "erase",
        CUSTOMER.name,
        customer_id,
        fields=["display_name", "attributes", *CLEARED_CUSTOMER_COLUMNS],
        details={
            "counts": dict(counts),
            "reason": reason if _REASON_CODE.fullmatch(reason) else "stated in the request case",
            "analytics": report.analytics,
            "mentions_elsewhere": report.mentions_elsewhere,
        },
    )
    return report


ERASED_TABLES = (
    "customer",
    "contact_point",
    "customer_tag",
    "customer_search_term",
    "interaction",
    "task",
    "idempotency_record",
    "data_subject_request",
    "customer_merge",
    "customer_alias",
)
"""Tables erasure writes to: PostgreSQL vacuums these afterwards."""
