"""Customer exports: what the caller may export, read in keyset batches through Records.

An export is planned inside the request (permission, filters, columns: every refusal is an error
response before the first byte) and then read batch by batch. Each batch is one ``Records.page``
with ``Action.export``: scope, hidden fields and masks apply as everywhere, sealed contact values
are decrypted per batch, and the batch's ids are audited as one ``export`` event (a 1,000,000-row
export leaves 1,000,000 / batch-size events, each listing its ids, chained like any other).

Streaming owns its units of work (see `stream_batches`): the request's own unit ends before the
response body is sent, and every batch's audit event must be stored *before* its rows leave the
server, so each batch runs in a short read unit of its own, whose events are appended to the audit
chain when it closes, before the batch is handed to the writer. A client that disconnects halfway
leaves exactly the batches it was sent (and at most the one being read) in the audit trail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.orm import Session

from rapport.access.policy import Action, Grant
from rapport.access.principal import Principal
from rapport.access.records import Page, Records, Row
from rapport.access.specs import CONTACT_POINT, CUSTOMER, ORGANISATION
from rapport.customers.schemas import CustomerExportParams
from rapport.customers.service import customers
from rapport.errors import InvalidInput
from rapport.exports import writers
from rapport.exports.writers import Format
from rapport.ingest.vcard import CardAddress
from rapport.models import CustomerTag
from rapport.models.base import table_of
from rapport.pagination import CursorCodec

BATCH_SIZE = 5000
# Kinds a list export carries. National ID numbers (sensitive, PIPL art. 28) never leave in bulk.
CONTACT_KINDS = ("phone", "email", "wechat", "address")
_CONTACT_COLUMNS = ("id", "customer_id", "kind", "value", "region", "city", "country", "is_primary")

_TAGS = table_of(CustomerTag)

UnitFactory = Callable[[], AbstractContextManager[Session]]


@dataclass
class ExportPlan:
    """One export as planned for its caller: filters, columns and what each batch adds."""

    principal: Principal
    format: Format
    where: list[ColumnElement[bool]]
    sort: str
    columns: list[str]
    contacts: bool
    organisations: bool
    bom: bool
    batch_size: int = BATCH_SIZE
    # Columns read as stored (no type conversion): the writer turns the stored text into the cell.
    as_stored: frozenset[str] = frozenset()
    rows: int = field(default=0, init=False)

    @property
    def media_type(self) -> str:
        return writers.MEDIA_TYPES[self.format]

    # -- batches ------------------------------------------------------------------------------

    def batch(self, recs: Records, cursor: str | None, limit: int) -> Page:
        """One page of export rows (audited by Records as an ``export`` event with its ids)."""
        page = recs.page(
            CUSTOMER,
            sort=self.sort,
            cursor=cursor,
            limit=limit,
            where=self.where,
            action=Action.export,
            as_stored=self.as_stored,
        )
        rows = page.items
        if rows:
            ids = [r["id"] for r in rows]
            tag_lists: dict[int, list[str]] = {}
            for r in rows:
                r["tags"] = tag_lists[r["id"]] = []
            tags = select(_TAGS.c.customer_id, _TAGS.c.tag).where(_of_customers(_TAGS.c.customer_id, ids))
            found = recs.conn.execute(tags.order_by(_TAGS.c.customer_id, _TAGS.c.tag), {"ids": ids})
            for cid, tag in found.all():
                values = tag_lists.get(cid)
                if values is not None:
                    values.append(tag)
            if self.contacts:
                self._add_contacts(recs, rows, ids)
            if self.organisations:
                self._add_organisations(recs, rows)
        self.rows += len(rows)
        return page

    def _add_contacts(self, recs: Records, rows: list[Row], ids: list[int]) -> None:
        """Contact values of the batch's customers: one query, decrypted and masked per batch.

        The customer ids come from the scoped page, which is the contact points' scope
        (``via_customer``), so no per-row scope probe is added. Only the sealed columns the
        format writes are read, because each one costs a decryption per row.
        """
        grant = recs.principal.grant(CONTACT_POINT.name)
        t = CONTACT_POINT.table
        columns = _CONTACT_COLUMNS + (("postal_code",) if self.format == "vcard" else ())
        stmt = (
            select(*(t.c[c] for c in columns))
            .where(_of_customers(t.c.customer_id, ids), t.c.kind.in_(CONTACT_KINDS))
            .order_by(t.c.customer_id, t.c.is_primary.desc(), t.c.id)
        )
        by_id = {r["id"]: r for r in rows}
        result = recs.conn.execute(stmt, {"ids": ids})
        keys = list(result.keys())
        # Rows of customers outside the page (an id range may hold some) are dropped unopened.
        found = [dict(zip(keys, r, strict=True)) for r in result.all() if r[1] in by_id]
        recs.mask_rows(CONTACT_POINT, recs.open(CONTACT_POINT, found), grant)
        vcard = self.format == "vcard"
        for r in rows:
            r["phone"], r["email"], r["wechat"], r["address"], r["_primary"] = [], [], [], [], {}
            if vcard:
                r["_addresses"] = []
        for cp in found:
            row = by_id[cp["customer_id"]]
            kind = cp["kind"]
            values = row[kind]
            if not values:
                row["_primary"][kind] = cp["is_primary"]
            if kind != "address":
                values.append(cp["value"])
                continue
            values.append(_full_address(cp))
            if vcard:
                row["_addresses"].append(
                    CardAddress(
                        street=cp["value"],
                        city=cp["city"],
                        region=cp["region"],
                        postal_code=cp.get("postal_code"),
                        country=cp["country"],
                        pref=bool(cp["is_primary"]),
                    )
                )

    def _add_organisations(self, recs: Records, rows: list[Row]) -> None:
        wanted = sorted({r["organisation_id"] for r in rows if r.get("organisation_id")})
        if not wanted:
            return
        t = ORGANISATION.table
        stmt = select(t.c.id, t.c.name).where(t.c.id.in_(wanted), recs.visible(ORGANISATION))
        names = dict(recs.conn.execute(stmt).tuples().all())
        for r in rows:
            r["_organisation"] = names.get(r.get("organisation_id"))

    def stream_batches(
        self, unit: UnitFactory, cursors: CursorCodec, cursor: str | None = None
    ) -> Iterator[list[Row]]:
        """Every batch of the export, each read (and its audit event stored) in its own unit."""
        while True:
            with writers.no_cycle_collection(), unit() as session:
                page = self.batch(Records(session, self.principal, cursors), cursor, self.batch_size)
            # The unit has closed: the batch's audit event is stored before its rows are sent.
            yield page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    # -- output -------------------------------------------------------------------------------

    def render(self, batches: Iterator[list[Row]]) -> Iterator[bytes]:
        return writers.render(
            self.format, CUSTOMER.table, self.columns, batches, bom=self.bom, as_stored=self.as_stored
        )

    def filename(self, today: dt.date | None = None) -> tuple[str, str]:
        """(ASCII fallback, the name in the caller's language) of the file."""
        stamp = f"{today or dt.date.today():%Y%m%d}"
        ext = writers.EXTENSIONS[self.format]
        local = (
            f"客户-{stamp}.{ext}" if self.principal.language.startswith("zh") else f"customers-{stamp}.{ext}"
        )
        return f"customers-{stamp}.{ext}", local


def _of_customers(column: Any, ids: list[int]) -> ColumnElement[bool]:
    """``column`` among the batch's customer ids (bound as ``ids``).

    A dense batch (ids sorted, little gap: the usual export by id) becomes an index range, which
    costs nothing to compile; otherwise an expanding IN (5,000 parameters compiled per query).
    """
    low, high = ids[0], ids[-1]
    if low <= high and high - low < 2 * len(ids):
        return column.between(low, high)  # type: ignore[no-any-return]
    return column.in_(bindparam("ids", expanding=True))  # type: ignore[no-any-return]


def _full_address(cp: Row) -> str:
    """Region, city and street in Chinese order (the city is not repeated for 上海市 and the like)."""
    region, city = cp.get("region") or "", cp.get("city") or ""
    return region + (city if city != region else "") + (cp.get("value") or "")


def plan_customer_export(
    recs: Records, params: CustomerExportParams, *, batch_size: int | None = None
) -> ExportPlan:
    """Check the caller may export customers and fix the filters and columns (errors come here)."""
    grant: Grant = recs.grant(CUSTOMER, Action.export)
    fmt: Format = params.format
    if params.pseudonymised and fmt != "csv":
        raise InvalidInput(
            "pseudonymised exports are CSV only",
            errors=[
                {"loc": ["query", "format"], "field": "format", "message": "must be csv", "type": "format"}
            ],
        )
    where = list(customers.export_where(recs, params))
    columns = [c for c in CUSTOMER.read_columns if c not in grant.hidden] + ["tags"]
    p = recs.principal
    contact = p.grant(CONTACT_POINT.name)
    # Contact values come only to callers who may export contact points and read their values.
    with_contacts = contact.allows(Action.export) and "value" not in contact.hidden
    if with_contacts:
        columns += list(CONTACT_KINDS)
    organisations = fmt == "vcard" and p.can(ORGANISATION.name, Action.read)
    bom = params.bom if params.bom is not None else fmt == "csv"
    as_stored = writers.stored_columns(CUSTOMER.table, columns) if fmt == "csv" else frozenset()
    if bom and fmt == "xlsx":
        bom = False  # a ZIP file has no byte-order mark
    return ExportPlan(
        principal=p,
        format=fmt,
        where=where,
        sort=params.sort or "id",
        columns=columns,
        contacts=with_contacts,
        organisations=organisations,
        bom=bom,
        batch_size=batch_size or BATCH_SIZE,
        as_stored=as_stored,
    )


def export_page(recs: Records, plan: ExportPlan, cursor: str | None, limit: int) -> tuple[bytes, str | None]:
    """One page of an export as a whole file (the ``limit``/``cursor`` form of the API)."""
    page = plan.batch(recs, cursor, limit)
    return b"".join(plan.render(iter([page.items]))), page.next_cursor


def content_disposition(ascii_name: str, local_name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, when it differs, an RFC 5987 ``filename*``."""
    from urllib.parse import quote

    value = f'attachment; filename="{ascii_name}"'
    if local_name != ascii_name:
        value += f"; filename*=UTF-8''{quote(local_name, safe='')}"
    return value
