"""Bulk reads and writes of the import pipeline: id blocks, key lookups, executemany inserts.

Everything here works on whole batches (one statement per table per batch), never per row: a
million-row import is a few hundred statements per table, not millions.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)

from rapport.access.specs import CONTACT_POINT, CUSTOMER, ORGANISATION
from rapport.models import CustomerExternalId, CustomerTag, ImportChange, ImportJob, ImportRejection
from rapport.models.base import table_of

EXTERNAL = table_of(CustomerExternalId)
TAGS = table_of(CustomerTag)
CHANGES = table_of(ImportChange)
JOBS = table_of(ImportJob)
REJECTIONS = table_of(ImportRejection)
_IN_CHUNK = 900  # stays below SQLite's default limit of bound parameters


def chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def allocate_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """``n`` ids reserved for new rows of ``table`` (ciphertexts are bound to their row's id).

    PostgreSQL: drawn from the serial sequence, so concurrent writers never get one of them.
    SQLite: max + 1 onwards, safe under the write unit's single-writer lock.
    """
    if n <= 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n},
        )
        return [int(r[0]) for r in rows]
    first = int(conn.execute(select(func.coalesce(func.max(table.c.id), 0) + 1)).scalar_one())
    return list(range(first, first + n))


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy would bind on SQLite, without its per-value processors (the hot path)."""
    if isinstance(value, dt.datetime):
        # SQLAlchemy's SQLite DATETIME storage format, in UTC (as UTCDateTime stores it).
        return value.astimezone(dt.UTC).isoformat(" ", "microseconds")[:26]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def bind_value(conn: Connection, value: Any) -> Any:
    """A value for ``insert_tuples``: as ``insert_many`` binds it on SQLite, as it is elsewhere."""
    return _sqlite_value(value) if conn.dialect.name == "sqlite" else value


def _needs_conversion(column: Any) -> bool:
    return isinstance(column.type, DateTime | Date | JSON | Numeric) or isinstance(
        getattr(column.type, "impl", None), DateTime
    )


def insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """One executemany for all rows (each with the same keys): driver level on SQLite."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    getter = itemgetter(*columns)
    convert = [i for i, c in enumerate(columns) if _needs_conversion(table.c[c])]
    if len(columns) == 1:
        params: list[Any] = [(getter(r),) for r in rows]
    else:
        params = [getter(r) for r in rows]
    if convert:
        out = []
        # The batch's timestamps are one datetime object: formatted once, not once per row.
        last: Any = None
        last_text: Any = None
        for values in params:
            values = list(values)
            for i in convert:
                value = values[i]
                if value is None:
                    continue
                if value is last:
                    values[i] = last_text
                elif isinstance(value, dt.datetime):
                    last, last_text = value, _sqlite_value(value)
                    values[i] = last_text
                else:
                    values[i] = _sqlite_value(value)
            out.append(tuple(values))
        params = out
    _sqlite_insert(conn, table, columns, params)


def insert_tuples(
    conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """``insert_many`` for rows already given as tuples of plain values (str, int, None) in
    ``columns`` order: no dict per row (the search terms of a batch are several per customer)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, table, columns, rows)
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    _sqlite_insert(conn, table, columns, rows)


def _sqlite_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Any]) -> None:
    """executemany of ``rows`` (tuples in ``columns`` order, values as the driver binds them)."""
    # Table and column names come from the models, never from input.
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    if not _has_triggers(conn, table.name):
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'  # noqa: S608
        conn.exec_driver_sql(sql, rows)
        return
    # A table with triggers (the dashboard rollups on customer): run one row at a time, each
    # INSERT opens a statement journal that copies every page the row and its trigger touch
    # (~30 us per customer, 4x the insert itself). Rows go to a bare temporary table first and
    # then over in one INSERT ... SELECT: one statement, one journal, the triggers still fire
    # per row in the same transaction.
    stage = f"_stage_{table.name}"
    conn.exec_driver_sql(
        f'CREATE TEMP TABLE "{stage}" AS SELECT {names} FROM main."{table.name}" WHERE 0'  # noqa: S608
    )
    try:
        conn.exec_driver_sql(f'INSERT INTO temp."{stage}" VALUES ({marks})', rows)  # noqa: S608
        conn.exec_driver_sql(
            f'INSERT INTO main."{table.name}" ({names}) SELECT {names} FROM temp."{stage}"'  # noqa: S608
        )
    finally:
        conn.exec_driver_sql(f'DROP TABLE temp."{stage}"')


_TRIGGERED: dict[str, bool] = {}


def _has_triggers(conn: Connection, name: str) -> bool:
    """Whether SQLite fires triggers on inserts into ``name`` (the migrations define them)."""
    known = _TRIGGERED.get(name)
    if known is None:
        found = conn.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? "
            "AND sql LIKE '%INSERT ON%' LIMIT 1",
            (name,),
        ).first()
        known = _TRIGGERED[name] = found is not None
    return known


def _copy(conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: ``COPY ... FROM STDIN`` on the unit's own connection (same transaction).

    psycopg adapts each value as it would a bound parameter, except JSON: a dict or list is
    written as its JSON text, which the json/jsonb column parses (as SQLAlchemy's JSON type does).
    """
    json_at = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    names = ", ".join(f'"{c}"' for c in columns)
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            if json_at:
                row = tuple(json.dumps(v) if i in json_at and v is not None else v for i, v in enumerate(row))
            copy.write_row(row)


def among(conn: Connection, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN values`` as one bound parameter, however many values: SQLite reads them from a
    JSON array (``json_each``), PostgreSQL from an array (``= ANY``). The statement's text is the
    same for every batch, so it is compiled once; an expanding IN of 900-value chunks cost more
    to compile per batch than the look-ups themselves."""
    items = list(dict.fromkeys(values))
    if conn.dialect.name == "sqlite":
        listed = bindparam("among_values", json.dumps(items), type_=String(), unique=True)
        values_of = func.json_each(listed).table_valued("value")
        return cast(ColumnElement[bool], column.in_(select(values_of.c.value)))
    element = Integer() if items and isinstance(items[0], int) else String()
    array = bindparam("among_values", items, type_=ARRAY(element), unique=True)
    return cast(ColumnElement[bool], column == any_(array))


def live_customers_by_external_id(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    c = CUSTOMER.table
    if not ids:
        return {}
    stmt = (
        select(EXTERNAL.c.external_id, EXTERNAL.c.customer_id)
        .join(c, c.c.id == EXTERNAL.c.customer_id)
        .where(among(conn, EXTERNAL.c.external_id, ids), c.c.deleted_at.is_(None))
    )
    return {r[0]: int(r[1]) for r in conn.execute(stmt)}


def external_id_owners(conn: Connection, ids: Sequence[str]) -> dict[str, int]:
    """Who holds each external id, live or deleted customer alike."""
    if not ids:
        return {}
    ext = EXTERNAL.c
    stmt = select(ext.external_id, ext.customer_id).where(among(conn, ext.external_id, ids))
    return {r[0]: int(r[1]) for r in conn.execute(stmt)}


def live_customers_by_contact(conn: Connection, kind: str, digests: Sequence[str]) -> dict[str, set[int]]:
    """Blind-index digest -> ids of live customers holding that contact value."""
    cp, c = CONTACT_POINT.table, CUSTOMER.table
    out: dict[str, set[int]] = defaultdict(set)
    if not digests:
        return out
    stmt = (
        select(cp.c.value_bidx, cp.c.customer_id)
        .join(c, c.c.id == cp.c.customer_id)
        .where(cp.c.kind == kind, among(conn, cp.c.value_bidx, digests), c.c.deleted_at.is_(None))
    )
    for digest, cid in conn.execute(stmt):
        out[digest].add(int(cid))
    return out


def customers_touched_by_job(conn: Connection, job_id: int, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    stmt = select(CHANGES.c.record_id).where(
        CHANGES.c.job_id == job_id, CHANGES.c.entity == "customer", among(conn, CHANGES.c.record_id, ids)
    )
    return {int(r[0]) for r in conn.execute(stmt)}


def rows_by_id(
    conn: Connection, table: Table, columns: Sequence[str], ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    stmt = select(table.c.id, *(table.c[c] for c in columns)).where(among(conn, table.c.id, ids))
    return {int(r["id"]): dict(r) for r in conn.execute(stmt).mappings()}


def tags_of(conn: Connection, ids: Sequence[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    if not ids:
        return out
    stmt = select(TAGS.c.customer_id, TAGS.c.tag).where(among(conn, TAGS.c.customer_id, ids))
    for cid, tag in conn.execute(stmt):
        out[int(cid)].add(tag)
    return out


def contact_digests_of(conn: Connection, ids: Sequence[int]) -> dict[int, set[tuple[str, str]]]:
    """(kind, blind index) of every contact point of these customers; kinds with a primary."""
    cp = CONTACT_POINT.table
    out: dict[int, set[tuple[str, str]]] = defaultdict(set)
    if not ids:
        return out
    stmt = select(cp.c.customer_id, cp.c.kind, cp.c.value_bidx, cp.c.is_primary).where(
        among(conn, cp.c.customer_id, ids)
    )
    for cid, kind, digest, primary in conn.execute(stmt):
        out[int(cid)].add((kind, digest or ""))
        if primary:
            out[int(cid)].add((kind, "*primary*"))
    return out


def external_ids_of(conn: Connection, ids: Sequence[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    if not ids:
        return out
    ext = EXTERNAL.c
    stmt = select(ext.customer_id, ext.external_id).where(among(conn, ext.customer_id, ids))
    for cid, ext in conn.execute(stmt):
        out[int(cid)].add(ext)
    return out


def organisations_by_name(conn: Connection, names: Sequence[str]) -> dict[str, int]:
    """Live organisations by exact name; the oldest wins when two share a name."""
    o = ORGANISATION.table
    if not names:
        return {}
    stmt = (
        select(o.c.name, func.min(o.c.id))
        .where(among(conn, o.c.name, names), o.c.deleted_at.is_(None))
        .group_by(o.c.name)
    )
    return {r[0]: int(r[1]) for r in conn.execute(stmt)}


def update_rows(conn: Connection, table: Table, rows: list[dict[str, Any]], columns: Sequence[str]) -> int:
    """executemany UPDATE of ``columns`` by id, guarded by the version each row was read at."""
    if not rows:
        return 0
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_version"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    result = conn.execute(stmt, rows)
    return int(result.rowcount)
