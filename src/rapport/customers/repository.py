"""Queries for customers' derived rows (tags, search terms) and their 360 view."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from math import isqrt
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


# Two plans for a name prefix. "Collect": gather every matching customer id from the term index,
# then read the page from them; its cost grows with the matches (~0.7 µs per matching term on
# SQLite). "Probe": walk customers in page order and probe each one's terms; a page needs about
# page size x customers / matches rows (~2.6 µs each), so it is fast for frequent prefixes ("wang")
# and hopeless for rare ones (a rare surname walks the whole table: seconds at 1,000,000). Probing
# wins once matches^2 > ~200 x page x customers / 50; the factors below are 8x that (id-like
# orders) so that narrower scopes (a rep walks past other teams' rows) and uneven spread still
# land on the bounded, collect side. In name order the matches of a surname sit together (every
# "王..." in one stretch), so the walk passes every name before them: at 1,000,000 customers
# "wang" sorted by name took 6.5 s probing and 0.11 s collecting (257,000 terms), so there the
# probe is kept for prefixes matching about as many terms as there are customers ("l").
_PROBE_FACTOR = {"display_name": 1_000_000}
_PROBE_FACTOR_DEFAULT = 1_600


def common_prefix_rows(customers: int, sort_column: str) -> int:
    """Matching terms above which a prefix is "common" and the probe plan is used."""
    return max(2_000, isqrt(_PROBE_FACTOR.get(sort_column, _PROBE_FACTOR_DEFAULT) * customers))


def name_match(session: Session, term: str, sort_column: str = "id") -> ColumnElement[bool]:
    # The column is byte-ordered (C collation on PostgreSQL), so a prefix is one index range.
    in_range = and_(_TERMS.c.term >= term, _TERMS.c.term < term + "\U0010ffff")
    customer = CUSTOMER.table
    conn = session.connection()
    # The highest id is one index step and close enough to the table's size for this estimate.
    size = conn.execute(select(func.max(customer.c.id))).scalar_one() or 0
    threshold = common_prefix_rows(size, sort_column)
    sample = select(_TERMS.c.customer_id).where(in_range).limit(threshold + 1).subquery()
    matches = conn.execute(select(func.count()).select_from(sample)).scalar_one()
    if matches > threshold:
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
