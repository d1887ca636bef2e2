"""Reading the linkage input through the data-access layer, and the dedup tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import column, inspect, select, table
from sqlalchemy.orm import Session

from rapport.access.policy import LINKAGE_FIELDS, NO_ACCESS, Action, Grant, Role, Scope
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.access.specs import CONTACT_POINT_INDEX, CUSTOMER, ResourceSpec
from rapport.dedup.features import CUSTOMER_KEYS, build_frame_columns
from rapport.models import DedupCluster, DedupPair, DedupRun
from rapport.models.base import table_of
from rapport.pagination import CursorCodec

RUN = table_of(DedupRun)
CLUSTER = table_of(DedupCluster)
PAIR = table_of(DedupPair)

_LINKAGE_SPECS: dict[str, ResourceSpec] = {"customer": CUSTOMER, "contact_point_index": CONTACT_POINT_INDEX}


@dataclass(frozen=True, slots=True)
class LinkagePrincipal(Principal):
    """A system reader with the linkage allow-lists of policy.LINKAGE_FIELDS instead of a role."""

    def grant(self, resource: str) -> Grant:
        allowed = LINKAGE_FIELDS.get(resource)
        spec = _LINKAGE_SPECS.get(resource)
        if allowed is None or spec is None:
            return NO_ACCESS
        return Grant(frozenset({Action.read}), Scope.all, frozenset(spec.read_columns) - allowed)


# role is never consulted (grant() is overridden); the least privileged role keeps it harmless.
LINKAGE_PRINCIPAL = LinkagePrincipal(
    user_id=None, username="dedup-linkage", role=Role.data_analyst, team_id=None, kind="system"
)


def linkage_records(session: Session) -> Records:
    return Records(session, LINKAGE_PRINCIPAL, CursorCodec("dedup-linkage"))


def _external_ids(session: Session, ids: Sequence[int] | None = None) -> dict[int, str]:
    """Customers' ids in source systems (table customer_external_id, written by imports), if present."""
    conn = session.connection()
    if not inspect(conn).has_table("customer_external_id"):
        return {}
    t = table("customer_external_id", column("external_id"), column("customer_id"))
    stmt = select(t.c.customer_id, t.c.external_id)
    if ids is not None:
        stmt = stmt.where(t.c.customer_id.in_(list(ids)))
    return {int(cid): str(ext) for cid, ext in conn.execute(stmt)}


def load_frame(session: Session, ids: Iterable[int] | None = None, batch: int = 5000) -> pd.DataFrame:
    """The linkage frame of every live customer (or of ``ids``), read through Records.

    Rows come as plain tuples into columns (no dict per row): a scan reads a million customers
    and more contact points.
    """
    recs = linkage_records(session)
    wanted = None if ids is None else sorted(set(ids))
    cust = CUSTOMER.table
    cust_stmt = recs.select(CUSTOMER)
    # Only the columns the frame uses, each checked against the principal's grant first.
    readable = {c.name for c in cust_stmt.selected_columns}
    cust_stmt = cust_stmt.with_only_columns(*(cust.c[k] for k in CUSTOMER_KEYS if k in readable))
    cp = CONTACT_POINT_INDEX.table
    contact_stmt = (
        recs.select(CONTACT_POINT_INDEX)
        .with_only_columns(cp.c.customer_id, cp.c.kind, cp.c.value_bidx)
        .where(cp.c.kind.in_(("phone", "email", "address")))
    )
    customers: dict[str, list[Any]] = {k: [] for k in CUSTOMER_KEYS}
    contacts: list[tuple[Any, str, str | None]] = []

    def add_customers(stmt: Any) -> None:
        result = recs.conn.execute(stmt)
        names = list(result.keys())
        rows = result.all()
        for k, col in zip(names, zip(*rows, strict=True) if rows else [()] * len(names), strict=True):
            customers[k].extend(col)

    if wanted is None:
        # Plain client-side results: every row ends up in the frame anyway, and a server-side
        # cursor (yield_per) on PostgreSQL left later statements of the same test connection
        # declared as cursors ("DECLARE ... CURSOR FOR ROLLBACK TO SAVEPOINT").
        add_customers(cust_stmt)
        contacts.extend(tuple(r) for r in recs.conn.execute(contact_stmt).all())
    else:
        for start in range(0, len(wanted), batch):
            chunk = wanted[start : start + batch]
            add_customers(cust_stmt.where(cust.c.id.in_(chunk)))
            contacts.extend(
                tuple(r) for r in recs.conn.execute(contact_stmt.where(cp.c.customer_id.in_(chunk))).all()
            )
    n = len(customers["id"])
    for k in CUSTOMER_KEYS:
        if len(customers[k]) != n:  # a field the principal may not read stays empty
            customers[k] = [None] * n
    # Whole-table reads by a system principal: one audit event per read, not one per record.
    recs.audit(
        "linkage_read",
        "customer",
        None,
        details={"count": n, "fields": sorted(LINKAGE_FIELDS["customer"])},
    )
    return build_frame_columns(customers, contacts, _external_ids(session, wanted))


def forget_customer(session: Session, customer_id: int) -> str:
    """Erasure hook: the person's scored pairs leave the review queue's history."""
    from sqlalchemy import delete, or_

    session.execute(delete(PAIR).where(or_(PAIR.c.left_id == customer_id, PAIR.c.right_id == customer_id)))
    return "duplicate-detection pairs deleted"
