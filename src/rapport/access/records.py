"""The one data-access layer for records.

Every read or write of business records goes through :class:`Records`, which applies the
caller's record scope, hides the fields their role may not read, checks optimistic-concurrency
versions and queues audit events. Endpoints, jobs, exports and analytics all use it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Result,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    true,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.sqltypes import NullType

from rapport.access import masks
from rapport.access.policy import PSEUDONYMISED, Action, Grant, Scope, generalise
from rapport.access.principal import Principal
from rapport.access.specs import CUSTOMER, ORDER, ResourceSpec
from rapport.audit.chain import PendingEvent
from rapport.db import record_audit
from rapport.errors import Conflict, Forbidden, NotFound, PreconditionFailed, invalid_field
from rapport.models import CustomerAlias
from rapport.models.base import table_of, utcnow
from rapport.pagination import CursorCodec, Sort, keyset
from rapport.security.keyring import allocate_id, column_opener, open_rows, seal_values, sealed_columns

Row = dict[str, Any]
_ALIASES = table_of(CustomerAlias)


@dataclass(slots=True)
class Page:
    items: list[Row]
    next_cursor: str | None
    limit: int
    prev_cursor: str | None = None  # the page before this one; None on the first page


@dataclass(slots=True)
class TuplePage:
    """A page whose rows are tuples in ``columns`` order (see :meth:`Records.page_tuples`)."""

    columns: list[str]
    items: list[Sequence[Any]]
    next_cursor: str | None
    limit: int


# "Read one record" statements per (resource, scope, hidden fields, has team): building a
# statement costs more than executing it, and this is the hottest path in the API.
_GET_CACHE: dict[tuple[str, Scope, frozenset[str], bool], Select[Any]] = {}


def _dicts(result: Result[Any]) -> list[Row]:
    """Rows as dicts: zipping the keys with each row tuple is several times cheaper per row than
    ``dict(row_mapping)``, which looks every key up through the mapping (exports read millions)."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result.all()]


class Records:
    def __init__(self, session: Session, principal: Principal, cursors: CursorCodec) -> None:
        self.session = session
        self.principal = principal
        self.cursors = cursors
        self._conn: Connection | None = None

    @property
    def conn(self) -> Connection:
        """The unit's connection: Core statements skip the ORM layer (7-9x cheaper per query)."""
        if self._conn is None:
            self._conn = self.session.connection()
        return self._conn

    # -- policy -------------------------------------------------------------------------------

    def grant(self, spec: ResourceSpec, action: Action = Action.read) -> Grant:
        grant = self.principal.grant(spec.name)
        if not grant.allows(action):
            self.audit(action.value, spec.name, None, outcome="denied")
            raise Forbidden(f"your role may not {action.value} {spec.name.replace('_', ' ')} records")
        return grant

    def require(self, spec: ResourceSpec, action: Action) -> Grant:
        """Resource-level check for actions that do not name a record (list, create)."""
        return self.grant(spec, action)

    def visible(self, spec: ResourceSpec, grant: Grant | None = None) -> ColumnElement[bool]:
        """WHERE clause restricting ``spec``'s table to the caller's record scope."""
        grant = grant or self.principal.grant(spec.name)
        t, scope = spec.table, grant.scope
        if spec.scope_path == "owned":
            return self._owned(t, scope)
        if spec.scope_path in ("via_customer", "via_customer_any"):
            # Correlated EXISTS probes the parent by primary key: cheap per row, unlike an IN list.
            parent = CUSTOMER.table
            owned = self._owned(
                parent, scope, deleted=None if spec.scope_path == "via_customer_any" else False
            )
            return exists(select(parent.c.id).where(parent.c.id == t.c.customer_id, owned))
        if spec.scope_path == "via_order":
            order = ORDER.table
            return exists(select(order.c.id).where(order.c.id == t.c.order_id, self.visible(ORDER, grant)))
        p = self.principal
        if spec.scope_path == "user":
            if scope is Scope.all:
                return true()
            if scope is Scope.own or p.team_id is None:
                return t.c.id == self._uid  # type: ignore[no-any-return]
            return or_(t.c.team_id == self._tid, t.c.id == self._uid)
        if spec.scope_path == "team" and scope is not Scope.all:
            return t.c.id == self._tid  # type: ignore[no-any-return]
        return true()

    def visible_rollup(self, table: Any, grant: Grant) -> ColumnElement[bool]:
        """WHERE clause for a rollup table keyed by the customer's ``team_id`` and ``owner_id``
        (0 for none, never a real id): the rows a caller with ``grant`` counts, the same rule as
        ``visible`` on the customers behind them (the rollup holds live customers only)."""
        return self._owned(table, grant.scope, deleted=None)

    # The caller's ids enter statements as named parameters, so statements built once (see
    # ``get``) are reused safely: every execution passes the current caller's values.
    @property
    def _uid(self) -> Any:
        return bindparam("_uid", self.principal.user_id)

    @property
    def _tid(self) -> Any:
        return bindparam("_tid", self.principal.team_id)

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"_uid": self.principal.user_id, "_tid": self.principal.team_id, **extra}

    def _owned(self, t: Any, scope: Scope, *, deleted: bool | None = False) -> ColumnElement[bool]:
        """``deleted``: False live rows only, True deleted rows only, None both."""
        p = self.principal
        if deleted is None:
            live: ColumnElement[bool] = true()
        else:
            live = t.c.deleted_at.is_not(None) if deleted else t.c.deleted_at.is_(None)
        if scope is Scope.all:
            return live
        mine = t.c.owner_id == self._uid
        if scope is Scope.own or p.team_id is None:
            return and_(live, mine)
        return and_(live, or_(t.c.team_id == self._tid, mine))

    def require_visible(self, spec: ResourceSpec, column: str, purpose: str = "filter by") -> None:
        """Filtering on a field the caller may not read would reveal it one guess at a time."""
        if column in self.principal.grant(spec.name).hidden:
            raise Forbidden(f"your role may not {purpose} {column}")

    def readable_columns(self, spec: ResourceSpec, grant: Grant) -> list[Any]:
        return [spec.table.c[c] for c in spec.read_columns if c not in grant.hidden]

    def select(self, spec: ResourceSpec, action: Action = Action.read) -> Select[Any]:
        grant = self.grant(spec, action)
        return select(*self.readable_columns(spec, grant)).where(self.visible(spec, grant))

    # -- reads --------------------------------------------------------------------------------

    def get(self, spec: ResourceSpec, record_id: int, *, audit_action: str | None = "read") -> Row:
        grant = self.principal.grant(spec.name)
        row = None
        if grant.allows(Action.read):
            key = (spec.name, grant.scope, grant.hidden, self.principal.team_id is None)
            stmt = _GET_CACHE.get(key)
            if stmt is None:
                stmt = select(*self.readable_columns(spec, grant)).where(
                    spec.table.c.id == bindparam("_rid"), self.visible(spec, grant)
                )
                _GET_CACHE[key] = stmt
            row = self.conn.execute(stmt, self._params(_rid=record_id)).mappings().first()
        if row is None:
            self.not_found(spec, record_id)
        if audit_action and spec.personal:
            self.audit(audit_action, spec.name, record_id)
        out = dict(row)  # type: ignore[arg-type]
        if sealed_columns(spec.table.name):
            open_rows(self.session, spec.table, (out,))
        # Masks work on the clear value (a phone keeps its last four digits), so decrypt first.
        return self.mask_rows(spec, [out], grant)[0]

    def open(self, spec: ResourceSpec, rows: list[Row]) -> list[Row]:
        """Decrypt the sealed columns of rows read with :meth:`select` (in place)."""
        if sealed_columns(spec.table.name):
            open_rows(self.session, spec.table, rows)
        return rows

    def not_found(self, spec: ResourceSpec, record_id: int | str) -> None:
        """Answer 404 whether the record is missing or out of scope, and log the attempt."""
        table = spec.table
        exists_at_all = self.conn.execute(select(table.c.id).where(table.c.id == record_id)).first()
        if exists_at_all is not None:
            self.audit("access", spec.name, record_id, outcome="denied")
        raise NotFound(f"{spec.name.replace('_', ' ')} {record_id} not found")

    def _page_statement(
        self,
        spec: ResourceSpec,
        *,
        sort: str,
        cursor: str | None,
        limit: int,
        where: Iterable[ColumnElement[bool]],
        refine: Callable[[Select[Any]], Select[Any]] | None,
        action: Action,
        as_stored: Collection[str],
    ) -> tuple[Grant, Sort, Select[Any], bool]:
        """The page query and whether it walks backwards (a previous-page cursor)."""
        sort_key = Sort.parse(sort, spec.sortable)
        grant = self.grant(spec, action)
        if sort_key.column in grant.hidden:
            raise Forbidden(f"your role may not sort by {sort_key.column}")
        columns = self.readable_columns(spec, grant)
        if as_stored:
            keep = {sort_key.column, "id"} | {c for c, _ in grant.masked}
            raw = set(as_stored) - keep
            columns = [type_coerce(c, NullType()).label(c.name) if c.name in raw else c for c in columns]
        stmt = select(*columns).where(self.visible(spec, grant), *where)
        if refine is not None:
            stmt = refine(stmt)
        value, last_id, backwards = (
            self.cursors.decode_directed(cursor, sort_key, spec.table) if cursor else (None, 0, False)
        )
        after = (value, last_id) if cursor else None
        # A previous page is the next page of the reversed order, read backwards from the cursor
        # row (same index, same cost), then put back in page order.
        walk = Sort(sort_key.column, not sort_key.descending) if backwards else sort_key
        return grant, sort_key, keyset(stmt, spec.table, walk, after).limit(limit + 1), backwards

    def _audit_page(self, spec: ResourceSpec, action: Action, ids: list[Any]) -> None:
        if action is Action.export:
            # Exports are audited even when empty: the attempt and its filter are the record.
            self.audit("export", spec.name, None, details={"ids": ids, "count": len(ids)})
        elif spec.personal and ids:
            self.audit("list", spec.name, None, details={"ids": ids})

    def page(
        self,
        spec: ResourceSpec,
        *,
        sort: str,
        cursor: str | None,
        limit: int,
        where: Iterable[ColumnElement[bool]] = (),
        refine: Callable[[Select[Any]], Select[Any]] | None = None,
        action: Action = Action.read,
        as_stored: Collection[str] = (),
    ) -> Page:
        """One keyset page. ``as_stored``: columns handed back as the driver returns them, without
        the column type's conversion (an export that only writes the stored text of timestamps and
        JSON skips parsing them); the sort column and masked columns are always converted."""
        grant, sort_key, stmt, backwards = self._page_statement(
            spec,
            sort=sort,
            cursor=cursor,
            limit=limit,
            where=where,
            refine=refine,
            action=action,
            as_stored=as_stored,
        )
        rows = self.open(spec, _dicts(self.conn.execute(stmt)))
        more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        next_cursor = prev_cursor = None
        if rows and (more or backwards):
            last = rows[-1]
            next_cursor = self.cursors.encode(sort_key, last.get(sort_key.column), last["id"])
        if rows and ((more and backwards) or (cursor and not backwards)):
            first = rows[0]
            value = first.get(sort_key.column)
            prev_cursor = self.cursors.encode(sort_key, value, first["id"], backwards=True)
        self.mask_rows(spec, rows, grant)
        self._audit_page(spec, action, [r["id"] for r in rows])
        return Page(rows, next_cursor, limit, prev_cursor)

    def page_tuples(
        self,
        spec: ResourceSpec,
        *,
        sort: str,
        cursor: str | None,
        limit: int,
        where: Iterable[ColumnElement[bool]] = (),
        action: Action = Action.read,
        as_stored: Collection[str] = (),
    ) -> TuplePage:
        """:meth:`page` with each row a tuple in ``columns`` order instead of a dict.

        Same scope, hidden fields, decryption, masks and audit event; for bulk readers (exports of
        millions of rows), which then index rows by position and skip building a dict per row.
        """
        grant, sort_key, stmt, backwards = self._page_statement(
            spec,
            sort=sort,
            cursor=cursor,
            limit=limit,
            where=where,
            refine=None,
            action=action,
            as_stored=as_stored,
        )
        if backwards:
            # Bulk readers walk forwards only; a previous-page cursor here is a caller's mistake.
            raise invalid_field("cursor", "bulk reads take next-page cursors only", where="query")
        result = self.conn.execute(stmt)
        columns = list(result.keys())
        rows: list[Sequence[Any]] = list(result.all())
        at_id = columns.index("id")
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            # Sortable columns are never sealed (ciphertexts do not sort), nor masked here: the
            # value is the one page() encodes.
            value = last[columns.index(sort_key.column)]
            next_cursor = self.cursors.encode(sort_key, value, last[at_id])
        rows = self.open_tuples(spec, columns, rows, grant)
        self._audit_page(spec, action, [r[at_id] for r in rows])
        return TuplePage(columns, rows, next_cursor, limit)

    def open_tuples(
        self,
        spec: ResourceSpec,
        columns: Sequence[str],
        rows: list[Sequence[Any]],
        grant: Grant | None = None,
    ) -> list[Sequence[Any]]:
        """Decrypt the sealed columns and mask the masked ones of positional rows (``columns``
        names each position; sealed columns need ``id`` among them).

        :meth:`open` then :meth:`mask_rows` for tuples: one function per row, compiled from the
        column list, with a decryptor per sealed column and a mask function per masked column.
        Rows come back unchanged (the same list) when no column needs either.
        """
        grant = grant or self.principal.grant(spec.name)
        table = spec.table
        sealed = [c for c in sealed_columns(table.name) if c in columns]
        masked = {c: m for c, m in grant.masked if c in columns}
        if not rows or not (sealed or masked):
            return rows
        env: dict[str, Any] = {}
        parts = []
        for i, c in enumerate(columns):
            value = f"r[{i}]"
            if c in sealed:
                env[f"O{i}"] = column_opener(self.session, table, c)
                value = f"O{i}(r[{columns.index('id')}], {value})"
            if c in masked:
                env[f"M{i}"] = masks.masker(masked[c])
                kind = f"r[{columns.index('kind')}]" if "kind" in columns else "None"
                value = f"M{i}({value}, {kind})"
            parts.append(value)
        # Only positions and generated names enter the source; values arrive as arguments.
        row_function = eval(f"lambda r: ({', '.join(parts)},)", env)  # noqa: S307
        return list(map(row_function, rows))

    def open_column(
        self,
        spec: ResourceSpec,
        columns: Sequence[str],
        rows: list[Sequence[Any]],
        column: str,
        grant: Grant | None = None,
    ) -> list[Any]:
        """The values of ``column`` in positional rows, decrypted and masked (``columns`` names
        each position; a sealed column needs ``id`` among them, a contact mask reads ``kind``).

        What :meth:`open_tuples` does for one column, handing back only its values: a bulk
        reader that needs a single sealed column pairs them with its rows and builds no tuples.
        """
        grant = grant or self.principal.grant(spec.name)
        if column in grant.hidden:
            raise Forbidden(f"your role may not read {column}")
        at = columns.index(column)
        values: list[Any]
        if column in sealed_columns(spec.table.name):
            values = column_opener(self.session, spec.table, column).values(rows, columns.index("id"), at)
        else:
            values = [r[at] for r in rows]
        for c, mask in grant.masked:
            if c == column:
                masked = masks.masker(mask)
                if "kind" in columns:
                    kind_at = columns.index("kind")
                    values = [masked(v, r[kind_at]) for v, r in zip(values, rows, strict=True)]
                else:
                    values = [masked(v, None) for v in values]
        return values

    def mask_rows(self, spec: ResourceSpec, rows: list[Row], grant: Grant | None = None) -> list[Row]:
        """Replace the values the caller may read only partially by their masked form (in place)."""
        grant = grant or self.principal.grant(spec.name)
        if grant.masked:
            for row in rows:
                for column, mask in grant.masked:
                    if column in row:
                        row[column] = masks.apply(mask, row[column], row)
        return rows

    def fetch(self, spec: ResourceSpec, stmt: Select[Any]) -> list[Row]:
        """Run a statement built with :meth:`select` and hand back decrypted, masked rows."""
        rows = self.open(spec, _dicts(self.conn.execute(stmt)))
        return self.mask_rows(spec, rows)

    def pseudonymised_page(
        self,
        spec: ResourceSpec,
        *,
        key: bytes,
        cursor: str | None,
        limit: int,
        where: Iterable[ColumnElement[bool]] = (),
    ) -> Page:
        """An export with no direct identifiers: keyed pseudonyms and generalised values only.

        Needs the export permission. The view (which columns, generalised how) is declared in
        :data:`rapport.access.policy.PSEUDONYMISED`; raw values never leave this method.
        """
        view = PSEUDONYMISED.get(spec.name)
        if view is None:
            raise Forbidden(f"{spec.name.replace('_', ' ')} records have no pseudonymised view")
        grant = self.grant(spec, Action.export)
        t = spec.table
        sources = sorted({src for src, _ in view.values()} | {"id"})
        stmt = select(*(t.c[c] for c in sources)).where(self.visible(spec, grant), *where)
        sort_key = Sort.parse("id", spec.sortable)
        after = self.cursors.decode(cursor, sort_key, t) if cursor else None
        stmt = keyset(stmt, t, sort_key, after).limit(limit + 1)
        raw = [dict(r) for r in self.conn.execute(stmt).mappings()]
        next_cursor = None
        if len(raw) > limit:
            raw = raw[:limit]
            next_cursor = self.cursors.encode(sort_key, raw[-1]["id"], raw[-1]["id"])
        rows = [
            {out: generalise(how, r[src], key=key, kind=spec.name) for out, (src, how) in view.items()}
            for r in raw
        ]
        self.audit(
            "export_pseudonymised",
            spec.name,
            None,
            details={"ids": [r["id"] for r in raw], "count": len(raw)},
        )
        return Page(rows, next_cursor, limit)

    # -- writes -------------------------------------------------------------------------------

    def create(self, spec: ResourceSpec, values: Mapping[str, Any]) -> Row:
        self.grant(spec, Action.create)
        data = dict(values)
        now = utcnow()
        if spec.scope_path == "owned":
            data.setdefault("owner_id", self.principal.user_id)
            data.setdefault("team_id", self.principal.team_id)
        if spec.versioned:
            data.update(created_at=now, updated_at=now, version=1)
        if sealed_columns(spec.table.name):
            # Ciphertexts are bound to their row, so the id must be known before the insert.
            data["id"] = allocate_id(self.conn, spec.table)
            seal_values(self.session, spec.table, data["id"], data)
        new_id = self.conn.execute(insert(spec.table).values(**data).returning(spec.table.c.id)).scalar_one()
        self.audit("create", spec.name, new_id, fields=list(values))
        return self.get(spec, new_id, audit_action=None)

    def locate(self, spec: ResourceSpec, record_id: int, action: Action) -> Grant:
        """404 unless the record is in scope, 403 unless the role may ``action`` it."""
        return self._locate_for_write(spec, record_id, action)

    def _locate_for_write(self, spec: ResourceSpec, record_id: int, action: Action) -> Grant:
        grant = self.principal.grant(spec.name)
        visible = (
            grant.allows(Action.read)
            and self.conn.execute(
                select(spec.table.c.id).where(spec.table.c.id == record_id, self.visible(spec, grant))
            ).first()
        )
        if not visible:
            self.not_found(spec, record_id)
        if not grant.allows(action):
            self.audit(action.value, spec.name, record_id, outcome="denied")
            raise Forbidden(f"your role may not {action.value} {spec.name.replace('_', ' ')} records")
        return grant

    def update(
        self,
        spec: ResourceSpec,
        record_id: int,
        values: Mapping[str, Any],
        expected_version: int | None,
    ) -> Row:
        self._locate_for_write(spec, record_id, Action.update)
        return self._apply_update(spec, record_id, values, expected_version, "update")

    def assign(
        self,
        spec: ResourceSpec,
        record_id: int,
        values: Mapping[str, Any],
        expected_version: int | None,
    ) -> Row:
        self._locate_for_write(spec, record_id, Action.assign)
        return self._apply_update(spec, record_id, values, expected_version, "assign")

    def _apply_update(
        self,
        spec: ResourceSpec,
        record_id: int,
        values: Mapping[str, Any],
        expected_version: int | None,
        action: str,
    ) -> Row:
        t = spec.table
        data = dict(values)
        seal_values(self.session, t, record_id, data)
        conds = [t.c.id == record_id]
        if spec.versioned:
            data["updated_at"] = utcnow()
            data["version"] = t.c.version + 1
            if expected_version is not None:
                conds.append(t.c.version == expected_version)
        result = self.conn.execute(update(t).where(*conds).values(**data))
        if result.rowcount == 0:
            raise PreconditionFailed(
                f"{spec.name.replace('_', ' ')} {record_id} was changed by someone else; "
                "reload it and apply your change again"
            )
        self.audit(action, spec.name, record_id, fields=list(values))
        return self.get(spec, record_id, audit_action=None)

    def delete(self, spec: ResourceSpec, record_id: int, expected_version: int | None) -> None:
        self._locate_for_write(spec, record_id, Action.delete)
        t = spec.table
        conds = [t.c.id == record_id]
        if spec.versioned and expected_version is not None:
            conds.append(t.c.version == expected_version)
        if spec.soft_delete:
            stmt: Any = (
                update(t)
                .where(*conds)
                .values(deleted_at=utcnow(), updated_at=utcnow(), version=t.c.version + 1)
            )
        else:
            stmt = delete(t).where(*conds)
        if self.conn.execute(stmt).rowcount == 0:
            raise PreconditionFailed(
                f"{spec.name.replace('_', ' ')} {record_id} was changed by someone else; reload it"
            )
        self.audit("delete", spec.name, record_id)

    def restore(self, spec: ResourceSpec, record_id: int, expected_version: int) -> Row:
        """Undo a soft delete: same scope as the delete was, and the same permission."""
        grant = self.principal.grant(spec.name)
        t = spec.table
        found = (
            grant.allows(Action.read)
            and self.conn.execute(
                select(t.c.id).where(t.c.id == record_id, self._owned(t, grant.scope, deleted=True))
            ).first()
        )
        if not found:
            self.not_found(spec, record_id)
        if not grant.allows(Action.delete):
            self.audit("restore", spec.name, record_id, outcome="denied")
            raise Forbidden(f"your role may not restore {spec.name.replace('_', ' ')} records")
        if (
            "erased_at" in t.c
            and self.conn.execute(select(t.c.erased_at).where(t.c.id == record_id)).scalar_one() is not None
        ):
            raise Conflict(f"{spec.name.replace('_', ' ')} {record_id} was erased; erasure cannot be undone")
        if spec.name == CUSTOMER.name:
            survivor = self.conn.execute(
                select(_ALIASES.c.customer_id).where(_ALIASES.c.alias_id == record_id)
            ).scalar()
            if survivor is not None:
                raise Conflict(
                    f"customer {record_id} was merged into customer {survivor}; undo the merge instead"
                )
        done = self.conn.execute(
            update(t)
            .where(t.c.id == record_id, t.c.version == expected_version)
            .values(deleted_at=None, updated_at=utcnow(), version=t.c.version + 1)
        ).rowcount
        if done == 0:
            raise PreconditionFailed(
                f"{spec.name.replace('_', ' ')} {record_id} was changed by someone else; reload it"
            )
        self.audit("restore", spec.name, record_id)
        return self.get(spec, record_id, audit_action=None)

    def version_of(self, spec: ResourceSpec, record_id: int) -> int:
        return int(
            self.conn.execute(select(spec.table.c.version).where(spec.table.c.id == record_id)).scalar_one()
        )

    # -- audit --------------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        resource: str,
        record_id: int | str | None,
        *,
        fields: list[str] | None = None,
        outcome: str = "ok",
        details: dict[str, Any] | None = None,
    ) -> None:
        p = self.principal
        record_audit(
            self.session,
            PendingEvent(
                action=action,
                resource=resource,
                record_id=None if record_id is None else str(record_id),
                fields=fields or [],
                outcome=outcome,
                actor_id=p.user_id,
                actor_kind=p.kind,
                ip=p.ip,
                request_id=p.request_id,
                details=details or {},
            ),
        )
