"""Reads of a merged customer's id answer ``307 Temporary Redirect`` to the survivor.

307 (not 301/308): every HTTP client follows it for GET (httpx, requests, curl -L, browsers),
it keeps the method, and it is not cached as permanent, which matters because a merge can be
undone and the old id then answers again. The body is a problem document and the headers say
where the record went: ``Location: /api/v1/customers/{survivor}`` and ``Rapport-Merged-Into``.
The redirect is only given to callers who can see the survivor; everyone else gets the 404.
"""

from __future__ import annotations

from sqlalchemy import select

from rapport.access.records import Records
from rapport.access.specs import CUSTOMER
from rapport.errors import RapportError
from rapport.merge.service import resolve_customer_id

API_PREFIX = "/api/v1"


class MergedCustomer(RapportError):
    status, slug, title = 307, "customer-merged", "Customer merged into another"


def redirect_if_merged(recs: Records, customer_id: int, suffix: str = "") -> None:
    """Raise the redirect when ``customer_id`` is an alias of a survivor the caller can see."""
    target = resolve_customer_id(recs.session, customer_id)
    if target == customer_id:
        return
    t = CUSTOMER.table
    visible = recs.conn.execute(select(t.c.id).where(t.c.id == target, recs.visible(CUSTOMER))).first()
    if visible is None:
        return
    raise MergedCustomer(
        f"customer {customer_id} was merged into customer {target}",
        headers={"Location": f"{API_PREFIX}/customers/{target}{suffix}", "Rapport-Merged-Into": str(target)},
        merged_into=target,
    )
