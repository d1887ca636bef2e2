"""Queries for customers' derived rows (tags, search terms) and their 360 view."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from rapport.access.specs import CONTACT_POINT, CUSTOMER
from rapport.customers.search import terms_for
from rapport.models import CustomerSearchTerm, CustomerTag, Order
from rapport.models.base import UTCDateTime, table_of
from rapport.security.crypto import blind_index

_TAGS = table_of(CustomerTag)
_TERMS = table_of(CustomerSearchTerm)


_TAGS_OF = (
    select(_TAGS.c.customer_id, _TAGS.c.tag)
    .where(_TAGS.c.customer_id.in_(bindparam("ids", expanding=True)))
    .order_by(_TAGS.c.tag)
)

_TAGS_OF_ONE = (
    select(_TAGS.c.customer_id, _TAGS.c.tag)
    .where(_TAGS.c.customer_id == bindparam("id"))
    .order_by(_TAGS.c.tag)
)


def tags_by_customer(session: Session, ids: Iterable[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = defaultdict(list)
    ids = list(ids)
    if not ids:
        return out
    if len(ids) == 1:  # the common single-record read skips the expanding IN
        rows = session.connection().execute(_TAGS_OF_ONE, {"id": ids[0]})
    else:
        rows = session.connection().execute(_TAGS_OF, {"ids": ids})
    for cid, tag in rows:
        out[cid].append(tag)
    return out


def replace_tags(session: Session, customer_id: int, tags: Iterable[str]) -> None:
    session.execute(delete(_TAGS).where(_TAGS.c.customer_id == customer_id))
    unique = sorted(set(tags))
    if unique:
        session.execute(insert(_TAGS), [{"customer_id": customer_id, "tag": t} for t in unique])


def replace_search_terms(session: Session, customer_id: int, *names: str | None) -> None:
    session.execute(delete(_TERMS).where(_TERMS.c.customer_id == customer_id))
    terms = terms_for(*names)
    if terms:
        session.execute(insert(_TERMS), [{"term": t, "customer_id": customer_id} for t in sorted(terms)])


# Above this many matching terms a prefix is "common" (a frequent surname, "wang"): walking
# customers in page order and probing each one's terms finds a page sooner than collecting every
# match first. Below it, collecting the matches is the fast way.
COMMON_PREFIX_ROWS = 5000


def name_match(session: Session, term: str) -> ColumnElement[bool]:
    # The column is byte-ordered (C collation on PostgreSQL), so a prefix is one index range.
    in_range = and_(_TERMS.c.term >= term, _TERMS.c.term < term + "\U0010ffff")
    sample = select(_TERMS.c.customer_id).where(in_range).limit(COMMON_PREFIX_ROWS + 1).subquery()
    matches = session.connection().execute(select(func.count()).select_from(sample)).scalar_one()
    customer = CUSTOMER.table
    if matches > COMMON_PREFIX_ROWS:
        return exists(select(_TERMS.c.customer_id).where(_TERMS.c.customer_id == customer.c.id, in_range))
    return customer.c.id.in_(select(_TERMS.c.customer_id).where(in_range))


def contact_match(kind: str, normalised: str) -> ColumnElement[bool]:
    """Customers with this exact contact value, found through the blind index (values are sealed)."""
    t = CONTACT_POINT.table
    return CUSTOMER.table.c.id.in_(
        select(t.c.customer_id).where(t.c.kind == kind, t.c.value_bidx == blind_index(kind, normalised))
    )


def tag_match(tag: str) -> ColumnElement[bool]:
    return CUSTOMER.table.c.id.in_(select(_TAGS.c.customer_id).where(_TAGS.c.tag == tag))


def order_summary(session: Session, customer_id: int, scope: ColumnElement[bool]) -> dict[str, Any]:
    """Count, revenue and first/last purchase over the orders ``scope`` lets the caller see."""
    o = table_of(Order)
    row = session.execute(
        select(
            func.count(o.c.id),
            func.coalesce(func.sum(o.c.total_amount), 0),
            func.min(o.c.ordered_at),
            func.max(o.c.ordered_at),
        ).where(o.c.customer_id == customer_id, o.c.status.not_in(("cancelled", "refunded")), scope)
    ).one()
    first, last = row[2], row[3]
    conv = UTCDateTime().process_result_value
    return {
        "order_count": row[0],
        "total_amount": row[1],
        "first_order_at": conv(first, session.get_bind().dialect) if first else None,
        "last_order_at": conv(last, session.get_bind().dialect) if last else None,
    }
