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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.orm import Session

from rapport.access.policy import Action, Grant
from rapport.access.principal import Principal
from rapport.access.records import Records
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
_CONTACT_COLUMNS = ("id", "customer_id", "kind", "value", "region", "city")
_CARD_COLUMNS = (*_CONTACT_COLUMNS, "country", "is_primary", "postal_code")  # vCard reads these too

_TAGS = table_of(CustomerTag)

UnitFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(slots=True)
class Batch:
    rows: list[list[Any]]
    next_cursor: str | None


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

    def batch(self, recs: Records, cursor: str | None, limit: int) -> Batch:
        """One batch of export rows (audited by Records as an ``export`` event with its ids).

        Each row is a list in ``self.columns`` order (customer columns, ``tags``, the contact
        kinds as lists of values, the primary one first), followed for vCard by :data:`EXTRAS`.
        """
        page = recs.page_tuples(
            CUSTOMER,
            sort=self.sort,
            cursor=cursor,
            limit=limit,
            where=self.where,
            action=Action.export,
            as_stored=self.as_stored,
        )
        width = len(page.columns)
        if page.columns != self.columns[:width]:  # the plan was made for the same principal
            raise RuntimeError("export columns changed between the plan and a batch")
        items = page.items
        # Each row gets its tags list and, with contacts, one list per kind (literals: cheapest).
        rows: list[list[Any]] = (
            [[*r, [], [], [], [], []] for r in items] if self.contacts else [[*r, []] for r in items]
        )
        if rows:
            at_id = page.columns.index("id")
            ids = [r[at_id] for r in rows]
            by_id = {r[at_id]: r for r in rows}
            tags = select(_TAGS.c.customer_id, _TAGS.c.tag).where(_of_customers(_TAGS.c.customer_id, ids))
            found = recs.conn.execute(tags.order_by(_TAGS.c.customer_id, _TAGS.c.tag), {"ids": ids})
            for cid, tag in found.all():
                row = by_id.get(cid)
                if row is not None:
                    row[width].append(tag)
            if self.format == "vcard":
                for r in rows:
                    r += [{}, [], None]
            if self.contacts:
                self._add_contacts(recs, by_id, ids, width + 1)
            if self.organisations:
                self._add_organisations(recs, rows, page.columns)
        self.rows += len(rows)
        return Batch(rows, page.next_cursor)

    def _add_contacts(self, recs: Records, by_id: dict[Any, list[Any]], ids: list[int], first: int) -> None:
        """Contact values of the batch's customers: one query, decrypted and masked per batch.

        The customer ids come from the scoped page, which is the contact points' scope
        (``via_customer``), so no per-row scope probe is added. Only the sealed columns the
        format writes are read, because each one costs a decryption per row. ``first``: the
        position of the first contact kind in a row.
        """
        grant = recs.principal.grant(CONTACT_POINT.name)
        t = CONTACT_POINT.table
        vcard = self.format == "vcard"
        columns = _CARD_COLUMNS if vcard else _CONTACT_COLUMNS
        stmt = (
            select(*(t.c[c] for c in columns))
            .where(_of_customers(t.c.customer_id, ids), t.c.kind.in_(CONTACT_KINDS))
            .order_by(t.c.customer_id, t.c.is_primary.desc(), t.c.id)
        )
        # Rows of customers outside the page (an id range may hold some) are dropped unopened.
        found: list[Sequence[Any]] = [r for r in recs.conn.execute(stmt, {"ids": ids}).all() if r[1] in by_id]
        values = recs.open_column(CONTACT_POINT, columns, found, "value", grant)
        slot = {kind: first + i for i, kind in enumerate(CONTACT_KINDS)}
        if not vcard:
            for (_, cid, kind, _, region, city), value in zip(found, values, strict=True):
                if kind == "address":
                    # Region, city and street in Chinese order (the city is not repeated for
                    # 上海市 and the like).
                    in_region, in_city = region or "", city or ""
                    value = in_region + (in_city if in_city != in_region else "") + (value or "")
                by_id[cid][slot[kind]].append(value)
            return
        extra = first + len(CONTACT_KINDS)
        # A postal code the role may not read stays out of the card (the value alone is allowed).
        postal_codes = (
            recs.open_column(CONTACT_POINT, columns, found, "postal_code", grant)
            if "postal_code" not in grant.hidden
            else [None] * len(found)
        )
        for (_, cid, kind, _, region, city, country, is_primary, _), value, postal_code in zip(
            found, values, postal_codes, strict=True
        ):
            row = by_id[cid]
            kind_values = row[slot[kind]]
            if not kind_values:
                row[extra][kind] = is_primary
            if kind != "address":
                kind_values.append(value)
                continue
            in_region, in_city = region or "", city or ""
            kind_values.append(in_region + (in_city if in_city != in_region else "") + (value or ""))
            row[extra + 1].append(
                CardAddress(
                    street=value,
                    city=city,
                    region=region,
                    postal_code=postal_code,
                    country=country,
                    pref=bool(is_primary),
                )
            )

    def _add_organisations(self, recs: Records, rows: list[list[Any]], columns: list[str]) -> None:
        if "organisation_id" not in columns:
            return
        at = columns.index("organisation_id")
        wanted = sorted({r[at] for r in rows if r[at]})
        if not wanted:
            return
        t = ORGANISATION.table
        stmt = select(t.c.id, t.c.name).where(t.c.id.in_(wanted), recs.visible(ORGANISATION))
        names = dict(recs.conn.execute(stmt).tuples().all())
        for r in rows:
            r[-1] = names.get(r[at])

    def stream_batches(
        self, unit: UnitFactory, cursors: CursorCodec, cursor: str | None = None
    ) -> Iterator[list[list[Any]]]:
        """Every batch of the export, each read (and its audit event stored) in its own unit."""
        while True:
            with writers.no_cycle_collection(), unit() as session:
                batch = self.batch(Records(session, self.principal, cursors), cursor, self.batch_size)
            # The unit has closed: the batch's audit event is stored before its rows are sent.
            yield batch.rows
            cursor = batch.next_cursor
            if cursor is None:
                return

    # -- output -------------------------------------------------------------------------------

    def render(self, batches: Iterator[list[list[Any]]]) -> Iterator[bytes]:
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
    stored = fmt in ("csv", "jsonl")  # their writers turn the stored text into the output directly
    as_stored = writers.stored_columns(CUSTOMER.table, columns) if stored else frozenset()
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
    batch = plan.batch(recs, cursor, limit)
    return b"".join(plan.render(iter([batch.rows]))), batch.next_cursor


def content_disposition(ascii_name: str, local_name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, when it differs, an RFC 5987 ``filename*``."""
    from urllib.parse import quote

    value = f'attachment; filename="{ascii_name}"'
    if local_name != ascii_name:
        value += f"; filename*=UTF-8''{quote(local_name, safe='')}"
    return value
