"""The analytics store: a DuckDB file holding a pseudonymised copy of the records for analysis.

Tables (ids are the record ids of the transactional database; no names, contact values or free
text ever reach the store)::

    customers(customer_id, created_at, organisation_id, gender, birth_year, region, city,
              preferred_channel, preferred_language, acquisition_source, lifecycle_stage,
              owner_id, team_id, profiling_allowed)
    orders(order_id, customer_id, ordered_at, status, channel, currency, total_amount, margin_amount)
    order_lines(line_id, order_id, product_id, quantity, unit_price, discount_amount, line_total)
    products(product_id, sku, name, category, list_price, is_active)
    interactions(interaction_id, customer_id, occurred_at, kind, direction, channel)
    tasks(task_id, customer_id, created_at, due_at, completed_at, status, priority)
    sync_state(table_name, high_water)

:meth:`AnalyticsStore.sync` copies what changed since the last sync (``updated_at`` high-water
marks) through the data-access layer with a pseudonymised system principal: the columns come from
the principal's grant, so a field the policy hides cannot be copied by mistake. Rows are read with
Core in batches and loaded into DuckDB as Arrow tables. Customers that were deleted (soft or hard)
disappear from the store together with their orders, interactions and tasks.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from rapport.access.policy import GENERALISED, Role
from rapport.access.principal import Principal
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER, INTERACTION, ORDER, ORDER_LINE, PRODUCT, TASK, ResourceSpec
from rapport.errors import Forbidden
from rapport.models import CustomerScore
from rapport.models.base import table_of
from rapport.pagination import CursorCodec
from rapport.privacy.consent import PARTNER_PURPOSES, Purpose, allowed_customer_ids

# Orders that count as purchases (see OrderStatus in rapport.orders.schemas): not pending,
# cancelled or refunded.
PURCHASE_STATUSES: tuple[str, ...] = ("paid", "shipped", "completed")
# Mirrors the segment rules read (rapport.segments.features): latest scores and current consent.
SCORES_DDL = (
    "CREATE TABLE IF NOT EXISTS scores (customer_id BIGINT, kind VARCHAR, value DOUBLE, label VARCHAR)"
)
CONSENTS_DDL = "CREATE TABLE IF NOT EXISTS consents (customer_id BIGINT, purpose VARCHAR, granted BOOLEAN)"

# The store reads as a data analyst does: every record, pseudonymised (policy.py decides what
# that hides), and never writes records through this principal.
ANALYTICS_PRINCIPAL = Principal(
    user_id=None, username="analytics-sync", role=Role.data_analyst, team_id=None, kind="system"
)

Progress = Callable[[str, int], None]

_ARROW: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
}


@dataclass(frozen=True)
class StoreTable:
    """One store table: its columns, where they come from, and how it is kept current."""

    name: str
    spec: ResourceSpec
    # store column -> (DuckDB type, source column of spec.table)
    columns: dict[str, tuple[str, str]]
    # Rows change when this source column moves; None: follow the parent order (order lines).
    watermark: str | None = "updated_at"

    @property
    def key(self) -> str:
        return next(iter(self.columns))

    def ddl(self) -> str:
        cols = [f"{name} {typ}" for name, (typ, _) in self.columns.items()]
        cols[0] += " PRIMARY KEY"
        if self.name == "customers":
            cols.append("profiling_allowed BOOLEAN")
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(cols)})"


CUSTOMERS = StoreTable(
    "customers",
    CUSTOMER,
    {
        "customer_id": ("BIGINT", "id"),
        "created_at": ("TIMESTAMP", "created_at"),
        "organisation_id": ("BIGINT", "organisation_id"),
        "gender": ("VARCHAR", "gender"),
        "birth_year": ("INTEGER", "birth_date"),  # generalised: the year only (policy.GENERALISED)
        "region": ("VARCHAR", "region"),
        "city": ("VARCHAR", "city"),
        "preferred_channel": ("VARCHAR", "preferred_channel"),
        "preferred_language": ("VARCHAR", "preferred_language"),
        "acquisition_source": ("VARCHAR", "acquisition_source"),
        "lifecycle_stage": ("VARCHAR", "lifecycle_stage"),
        "owner_id": ("BIGINT", "owner_id"),
        "team_id": ("BIGINT", "team_id"),
    },
)
ORDERS = StoreTable(
    "orders",
    ORDER,
    {
        "order_id": ("BIGINT", "id"),
        "customer_id": ("BIGINT", "customer_id"),
        "ordered_at": ("TIMESTAMP", "ordered_at"),
        "status": ("VARCHAR", "status"),
        "channel": ("VARCHAR", "channel"),
        "currency": ("VARCHAR", "currency"),
        "total_amount": ("DOUBLE", "total_amount"),
        "margin_amount": ("DOUBLE", "margin_amount"),
    },
)
ORDER_LINES = StoreTable(
    "order_lines",
    ORDER_LINE,
    {
        "line_id": ("BIGINT", "id"),
        "order_id": ("BIGINT", "order_id"),
        "product_id": ("BIGINT", "product_id"),
        "quantity": ("DOUBLE", "quantity"),
        "unit_price": ("DOUBLE", "unit_price"),
        "discount_amount": ("DOUBLE", "discount_amount"),
        "line_total": ("DOUBLE", "line_total"),
    },
    watermark=None,
)
PRODUCTS = StoreTable(
    "products",
    PRODUCT,
    {
        "product_id": ("BIGINT", "id"),
        "sku": ("VARCHAR", "sku"),
        "name": ("VARCHAR", "name"),
        "category": ("VARCHAR", "category"),
        "list_price": ("DOUBLE", "list_price"),
        "is_active": ("BOOLEAN", "is_active"),
    },
)
INTERACTIONS = StoreTable(
    "interactions",
    INTERACTION,
    {
        "interaction_id": ("BIGINT", "id"),
        "customer_id": ("BIGINT", "customer_id"),
        "occurred_at": ("TIMESTAMP", "occurred_at"),
        "kind": ("VARCHAR", "kind"),
        "direction": ("VARCHAR", "direction"),
        "channel": ("VARCHAR", "channel"),
    },
)
TASKS = StoreTable(
    "tasks",
    TASK,
    {
        "task_id": ("BIGINT", "id"),
        "customer_id": ("BIGINT", "customer_id"),
        "created_at": ("TIMESTAMP", "created_at"),
        "due_at": ("TIMESTAMP", "due_at"),
        "completed_at": ("TIMESTAMP", "completed_at"),
        "status": ("VARCHAR", "status"),
        "priority": ("VARCHAR", "priority"),
    },
)

# Sync order matters: order lines follow the orders changed since the orders' previous mark.
STORE_TABLES: tuple[StoreTable, ...] = (CUSTOMERS, PRODUCTS, ORDER_LINES, ORDERS, INTERACTIONS, TASKS)
# Tables holding one person's rows, with the column naming the person (erasure deletes them).
_PER_CUSTOMER = ("orders", "interactions", "tasks")

SYNC_STATE_DDL = (
    "CREATE TABLE IF NOT EXISTS sync_state (table_name VARCHAR PRIMARY KEY, high_water TIMESTAMP)"
)


def first_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, the result read to the end (DuckDB refuses new work before that)."""
    rows = con.execute(sql, params or []).fetchall()
    return tuple(rows[0]) if rows else None


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the store tables (idempotent); tests call it on an in-memory connection."""
    for table in STORE_TABLES:
        con.execute(table.ddl()).fetchall()
    con.execute(SYNC_STATE_DDL).fetchall()


def profiling_allowed_ids(session: Session) -> Select[Any]:
    """Ids of the customers whose data may be used for profiling (PIPL art. 24, GDPR art. 21/22).

    The one place the store decides ``customers.profiling_allowed``; it is recomputed for every
    customer on every sync because consent can change without the customer row changing.
    """
    return allowed_customer_ids(session, Purpose.profiling)


@dataclass
class SyncReport:
    upserted: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    full: dict[str, bool] = field(default_factory=dict)
    profiling_allowed: int = 0
    seconds: float = 0.0


def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _convert(values: Sequence[Any], duck_type: str) -> pa.Array:
    if duck_type == "TIMESTAMP":
        return pa.array([_naive_utc(v) for v in values], type=pa.timestamp("us"))
    if duck_type == "DOUBLE":
        return pa.array([float(v) if isinstance(v, Decimal | int) else v for v in values], type=pa.float64())
    return pa.array(values, type=_ARROW[duck_type])


class AnalyticsStore:
    """A connection to the store with sync and erasure; also usable as a context manager."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        ensure_schema(con)

    @classmethod
    def open(cls, path: Path | str) -> AnalyticsStore:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(duckdb.connect(str(path)))

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> AnalyticsStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _do(self, sql: str, params: list[Any] | None = None) -> int:
        """Run a statement to completion (DuckDB refuses new work while a result is unread)."""
        rows = self.con.execute(sql, params or []).fetchall()
        return int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0

    # -- state --------------------------------------------------------------------------------

    def high_water(self, table: str) -> dt.datetime | None:
        row = first_row(self.con, "SELECT high_water FROM sync_state WHERE table_name = ?", [table])
        if row is None or row[0] is None:
            return None
        value: dt.datetime = row[0]
        return value.replace(tzinfo=dt.UTC)

    def _set_high_water(self, table: str, value: dt.datetime | None) -> None:
        if value is None:
            return
        self._do("INSERT OR REPLACE INTO sync_state VALUES (?, ?)", [table, _naive_utc(value)])

    def count(self, table: str) -> int:
        row = first_row(self.con, f"SELECT count(*) FROM {table}")  # noqa: S608 (known names)
        return int(row[0]) if row else 0

    # -- sync ---------------------------------------------------------------------------------

    def sync(
        self,
        session: Session,
        *,
        batch_size: int = 50_000,
        progress: Progress | None = None,
        full: bool = False,
    ) -> SyncReport:
        """Copy rows changed since the last sync; remove what was deleted. One DuckDB transaction."""
        started = time.perf_counter()
        recs = Records(session, ANALYTICS_PRINCIPAL, CursorCodec("analytics-sync"))
        report = SyncReport()
        self._do("BEGIN TRANSACTION")
        try:
            had = self._ids("customers")
            for table in (CUSTOMERS, PRODUCTS):
                self._sync_table(recs, table, report, batch_size, progress, full)
            # Customers that (re)appeared bring their whole history: a restored customer's
            # orders did not change, so their marks would skip them.
            returned = self._ids("customers") - had
            for table in (ORDER_LINES, ORDERS, INTERACTIONS, TASKS):
                self._sync_table(recs, table, report, batch_size, progress, full, returned=returned)
            self._remove_deleted(recs, report, batch_size)
            report.profiling_allowed = self._refresh_profiling(session, batch_size)
            self._mirror_consents(session, batch_size)
            self.mirror_scores(session, batch_size)
            self._do("COMMIT")
        except BaseException:
            self._do("ROLLBACK")
            raise
        report.seconds = time.perf_counter() - started
        recs.audit(
            "sync",
            "analytics",
            None,
            details={"upserted": report.upserted, "removed": report.removed},
        )
        return report

    def _ids(self, table: str) -> set[int]:
        key = next(t.key for t in STORE_TABLES if t.name == table)
        return {int(r[0]) for r in self.con.execute(f"SELECT {key} FROM {table}").fetchall()}  # noqa: S608

    def _source_columns(self, recs: Records, table: StoreTable) -> list[ColumnElement[Any]]:
        """The source columns for ``table`` as the principal's grant allows (fails closed)."""
        grant = recs.grant(table.spec)
        readable = {c.name for c in recs.readable_columns(table.spec, grant)}
        generalised = GENERALISED.get(table.spec.name, {})
        out: list[ColumnElement[Any]] = []
        for store_col, (_, source) in table.columns.items():
            column = table.spec.table.c[source]
            if source in readable:
                out.append(column.label(store_col))
            elif generalised.get(source) == "year":
                out.append(cast(extract("year", column), Integer).label(store_col))
            else:
                raise Forbidden(f"the analytics store may not read {table.spec.name}.{source}")
        return out

    def _sync_table(
        self,
        recs: Records,
        table: StoreTable,
        report: SyncReport,
        batch_size: int,
        progress: Progress | None,
        full: bool,
        returned: set[int] | None = None,
    ) -> None:
        t = table.spec.table
        stmt = select(*self._source_columns(recs, table)).where(recs.visible(table.spec))
        new_mark: dt.datetime | None = None
        if table.watermark is None:
            # Order lines have no timestamps: take the lines of orders changed since the orders'
            # mark (ORDERS syncs after this table and moves that mark).
            since = None if full else self.high_water(ORDERS.name)
            orders = ORDER.table
            changed = select(orders.c.id).where(orders.c.updated_at > since) if since else None
            if changed is not None:
                cond: ColumnElement[bool] = t.c.order_id.in_(changed)
                if returned:
                    of_returned = select(orders.c.id).where(orders.c.customer_id.in_(returned))
                    cond = or_(cond, t.c.order_id.in_(of_returned))
                stmt = stmt.where(cond)
            report.full[table.name] = changed is None
        else:
            since = None if full else self.high_water(table.name)
            mark = t.c[table.watermark]
            if since is not None:
                cond = mark > since
                if returned and "customer_id" in t.c:
                    cond = or_(cond, t.c.customer_id.in_(returned))
                stmt = stmt.where(cond)
            report.full[table.name] = since is None
            new_mark = self._max_mark(recs, table, since)
        if report.full[table.name]:
            self._do(f"DELETE FROM {table.name}")  # noqa: S608 (known names)
        count = self._load(recs, stmt, table, batch_size, progress)
        report.upserted[table.name] = count
        if new_mark is not None:
            self._set_high_water(table.name, new_mark)

    def _max_mark(self, recs: Records, table: StoreTable, since: dt.datetime | None) -> dt.datetime | None:
        """The mark to store: the largest change time at the start of this sync."""
        assert table.watermark is not None
        t = table.spec.table
        value = recs.conn.execute(select(func.max(t.c[table.watermark]))).scalar()
        if value is None:
            return since
        if isinstance(value, str):  # SQLite without the column type: parse it
            value = dt.datetime.fromisoformat(value)
        assert isinstance(value, dt.datetime)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    def _load(
        self,
        recs: Records,
        stmt: Select[Any],
        table: StoreTable,
        batch_size: int,
        progress: Progress | None,
    ) -> int:
        names = list(table.columns)
        types = [typ for typ, _ in table.columns.values()]
        result = recs.conn.execute(stmt.execution_options(yield_per=batch_size))
        count = 0
        for rows in result.partitions():
            columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
            batch = pa.Table.from_arrays(
                [_convert(col, typ) for col, typ in zip(columns, types, strict=True)], names=names
            )
            if table.watermark is None:
                # Lines of a changed order are replaced as a set (a line may have been removed).
                self.con.register("_batch", batch)
                self._do(
                    f"DELETE FROM {table.name} WHERE order_id IN (SELECT DISTINCT order_id FROM _batch)"  # noqa: S608
                )
                self.con.unregister("_batch")
            self.con.register("_batch", batch)
            self._do(
                f"INSERT OR REPLACE INTO {table.name} ({', '.join(names)}) "  # noqa: S608
                f"SELECT {', '.join(names)} FROM _batch"
            )
            self.con.unregister("_batch")
            count += len(rows)
            if progress is not None:
                progress(table.name, len(rows))
        return count

    def _load_ids(self, name: str, stmt: Select[Any], conn: Any, batch_size: int) -> None:
        self._do(f"CREATE OR REPLACE TEMP TABLE {name} (id BIGINT)")
        result = conn.execute(stmt.execution_options(yield_per=batch_size))
        for rows in result.partitions():
            batch = pa.Table.from_arrays([pa.array([r[0] for r in rows], type=pa.int64())], names=["id"])
            self.con.register("_ids", batch)
            self._do(f"INSERT INTO {name} SELECT id FROM _ids")  # noqa: S608
            self.con.unregister("_ids")

    def _remove_deleted(self, recs: Records, report: SyncReport, batch_size: int) -> None:
        """Drop rows whose record is gone or out of the principal's scope (soft-deleted customers)."""
        before = {t.name: self.count(t.name) for t in STORE_TABLES}
        for table in (CUSTOMERS, PRODUCTS, ORDERS, INTERACTIONS, TASKS):
            t = table.spec.table
            ids = select(t.c.id).where(recs.visible(table.spec))
            self._load_ids("_live", ids, recs.conn, batch_size)
            if table is CUSTOMERS:
                gone = [
                    int(r[0])
                    for r in self.con.execute(
                        "SELECT customer_id FROM customers WHERE customer_id NOT IN (SELECT id FROM _live)"
                    ).fetchall()
                ]
                self.forget(gone)  # with their orders, lines, interactions, tasks and results
            else:
                self._do(
                    f"DELETE FROM {table.name} WHERE {table.key} NOT IN (SELECT id FROM _live)"  # noqa: S608
                )
        # Lines whose order left the store.
        self._do("DELETE FROM order_lines WHERE order_id NOT IN (SELECT order_id FROM orders)")
        self._do("DROP TABLE IF EXISTS _live")
        for name, count in before.items():
            report.removed[name] = count - self.count(name)

    def _refresh_profiling(self, session: Session, batch_size: int) -> int:
        self._load_ids("_allowed", profiling_allowed_ids(session), session.connection(), batch_size)
        self._do("UPDATE customers SET profiling_allowed = customer_id IN (SELECT id FROM _allowed)")
        self._do("DROP TABLE IF EXISTS _allowed")
        row = first_row(self.con, "SELECT count(*) FROM customers WHERE profiling_allowed")
        return int(row[0]) if row else 0

    # -- mirrors for segment rules -------------------------------------------------------------

    def _replace_rows(self, name: str, ddl: str, columns: list[tuple[str, pa.DataType]], stmt: Any,
                      conn: Any, batch_size: int) -> None:  # fmt: skip
        self._do(f"DROP TABLE IF EXISTS {name}")
        self._do(ddl)
        result = conn.execute(stmt.execution_options(yield_per=batch_size))
        for rows in result.partitions():
            batch = pa.Table.from_arrays(
                [pa.array([r[i] for r in rows], type=t) for i, (_, t) in enumerate(columns)],
                names=[c for c, _ in columns],
            )
            self.con.register("_rows", batch)
            self._do(f"INSERT INTO {name} SELECT * FROM _rows")  # noqa: S608 - fixed names
            self.con.unregister("_rows")

    def _mirror_consents(self, session: Session, batch_size: int) -> None:
        """Who may be used for which purpose now, answered by the consent module (restriction included).

        Segment rules such as ``consent(marketing_wechat)`` read this table; it is rebuilt on every
        sync because consent changes without the customer row changing. Partner purposes need a
        named partner and are not segment criteria.
        """
        purposes = [p for p in Purpose if p not in PARTNER_PURPOSES]
        stmt = union_all(
            *(
                select(
                    allowed_customer_ids(session, p).subquery().c.customer_id,
                    literal(p.value).label("purpose"),
                    literal(True).label("granted"),
                )
                for p in purposes
            )
        )
        self._replace_rows(
            "consents",
            CONSENTS_DDL,
            [("customer_id", pa.int64()), ("purpose", pa.string()), ("granted", pa.bool_())],
            stmt,
            session.connection(),
            batch_size,
        )

    def mirror_scores(self, session: Session, batch_size: int = 50_000) -> None:
        """The latest score per customer and kind (``customer_score``), for segment rules."""
        t = table_of(CustomerScore)
        stmt = select(t.c.customer_id, t.c.kind, cast(t.c.value, Float), t.c.label).order_by(t.c.id)
        self._replace_rows(
            "scores",
            SCORES_DDL,
            [
                ("customer_id", pa.int64()),
                ("kind", pa.string()),
                ("value", pa.float64()),
                ("label", pa.string()),
            ],
            stmt,
            session.connection(),
            batch_size,
        )

    # -- erasure ------------------------------------------------------------------------------

    def forget(self, customer_ids: Iterable[int]) -> int:
        """Delete the customers' rows from every store table (erasure); returns rows deleted."""
        ids = pa.Table.from_arrays([pa.array(sorted(set(customer_ids)), type=pa.int64())], names=["id"])
        if ids.num_rows == 0:
            return 0
        self.con.register("_forget", ids)
        deleted = 0
        statements = [
            "DELETE FROM order_lines WHERE order_id IN "
            "(SELECT order_id FROM orders WHERE customer_id IN (SELECT id FROM _forget))",
            *(
                f"DELETE FROM {name} WHERE customer_id IN (SELECT id FROM _forget)"  # noqa: S608
                for name in (*_PER_CUSTOMER, "customers")
            ),
            *(
                f"DELETE FROM {name} WHERE customer_id IN (SELECT id FROM _forget)"  # noqa: S608
                for name in self.derived_tables()
            ),
            *(
                f"DELETE FROM {name} WHERE customer_id IN (SELECT id FROM _forget)"  # noqa: S608
                for name in self.mirror_tables()
            ),
        ]
        try:
            for sql in statements:
                deleted += self._do(sql)
        finally:
            self.con.unregister("_forget")
        return deleted

    def derived_tables(self) -> list[str]:
        """Tables jobs wrote that name customers: result tables and the score history."""
        found = self.result_tables(with_column="customer_id")
        history = first_row(
            self.con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'score_history'"
        )
        return [*found, "score_history"] if history and history[0] else found

    def mirror_tables(self) -> list[str]:
        """The score and consent mirrors that exist (they appear with the first sync)."""
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name IN ('scores', 'consents') "
            "ORDER BY table_name"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def result_tables(self, *, with_column: str | None = None) -> list[str]:
        sql = (
            "SELECT DISTINCT table_name FROM information_schema.columns "
            "WHERE starts_with(table_name, 'result_')"
        )
        params: list[Any] = []
        if with_column:
            sql += " AND column_name = ?"
            params.append(with_column)
        return sorted(str(r[0]) for r in self.con.execute(sql, params).fetchall())


def forget_in_store(path: Path | str, customer_ids: Iterable[int]) -> int:
    """Erasure entry point: delete the customers from the store file, if there is one yet."""
    if not Path(path).exists():
        return 0
    with AnalyticsStore.open(path) as store:
        return store.forget(customer_ids)
