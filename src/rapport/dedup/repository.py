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
from rapport.dedup.features import build_frame
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

CUSTOMER_FIELDS = (
    "id",
    "display_name",
    "family_name",
    "given_name",
    "name_latin",
    "gender",
    "birth_date",
    "region",
    "city",
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


def load_frame(session: Session, ids: Iterable[int] | None = None, batch: int = 50_000) -> pd.DataFrame:
    """The linkage frame of every live customer (or of ``ids``), read through Records."""
    recs = linkage_records(session)
    wanted = None if ids is None else sorted(set(ids))
    cust_stmt = recs.select(CUSTOMER)
    contact_stmt = recs.select(CONTACT_POINT_INDEX).where(
        CONTACT_POINT_INDEX.table.c.kind.in_(("phone", "email", "address"))
    )
    customers: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    if wanted is None:
        # Plain client-side results in partitions: every row ends up in the frame anyway, and a
        # server-side cursor (yield_per) on PostgreSQL left later statements of the same test
        # connection declared as cursors ("DECLARE ... CURSOR FOR ROLLBACK TO SAVEPOINT").
        for part in recs.conn.execute(cust_stmt).mappings().partitions(batch):
            customers.extend({k: r[k] for k in CUSTOMER_FIELDS} for r in part)
        for part in recs.conn.execute(contact_stmt).mappings().partitions(batch):
            contacts.extend(dict(r) for r in part)
    else:
        for start in range(0, len(wanted), 5000):
            chunk = wanted[start : start + 5000]
            customers.extend(
                {k: r[k] for k in CUSTOMER_FIELDS}
                for r in recs.conn.execute(cust_stmt.where(CUSTOMER.table.c.id.in_(chunk))).mappings()
            )
            contacts.extend(
                dict(r)
                for r in recs.conn.execute(
                    contact_stmt.where(CONTACT_POINT_INDEX.table.c.customer_id.in_(chunk))
                ).mappings()
            )
    # Whole-table reads by a system principal: one audit event per read, not one per record.
    recs.audit(
        "linkage_read",
        "customer",
        None,
        details={"count": len(customers), "fields": sorted(LINKAGE_FIELDS["customer"])},
    )
    return build_frame(customers, contacts, _external_ids(session, wanted))


def forget_customer(session: Session, customer_id: int) -> str:
    """Erasure hook: the person's scored pairs leave the review queue's history."""
    from sqlalchemy import delete, or_

    session.execute(delete(PAIR).where(or_(PAIR.c.left_id == customer_id, PAIR.c.right_id == customer_id)))
    return "duplicate-detection pairs deleted"
