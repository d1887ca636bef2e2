"""Engines, the per-request/per-job unit of work, and SQLite's single-writer discipline.

SQLite allows one writer at a time and a read transaction cannot be upgraded once another
connection has written. So write units start with ``BEGIN IMMEDIATE`` under a process lock, and a
read unit that must record audit events ends its read snapshot first, then appends them in a
short write transaction of its own. PostgreSQL needs none of this.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from rapport.audit.chain import PendingEvent, append_events

_BEGIN_OPTION = "rapport_sqlite_begin"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=16,
            max_overflow=32,
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_size=16, max_overflow=16, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN can be IMMEDIATE when needed.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Deleted or overwritten content is zeroed in the file, not left in free space: erasure
        # must reach the bytes on disk (bench/secure_delete.py measures the cost).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        if mode != "NONE":
            conn.exec_driver_sql(f"BEGIN {mode}")


def compact_storage(engine: Engine, tables: Iterable[str] = (), *, full: bool = False) -> dict[str, Any]:
    """Make deleted rows unrecoverable from the database files, after the deleting unit committed.

    SQLite: ``secure_delete`` (set on every connection) zeroes deleted cells and freed pages;
    a TRUNCATE checkpoint copies the WAL into the file and empties it (old page images in the
    WAL would otherwise keep erased values); VACUUM then rebuilds every b-tree, which drops copies
    of erased keys that interior index pages may still hold. PostgreSQL: VACUUM removes dead
    tuples of ``tables`` (FULL rewrites them into new files); see README "Erasure" for what
    remains outside the database's reach (WAL archives, backups, file-system free blocks).
    """
    done: dict[str, Any] = {}
    names = list(tables)
    # Neither VACUUM nor a checkpoint may run inside a transaction.
    options: dict[str, Any] = (
        {_BEGIN_OPTION: "NONE"} if is_sqlite(engine) else {"isolation_level": "AUTOCOMMIT"}
    )
    with engine.connect().execution_options(**options) as conn:
        if is_sqlite(engine):
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            if full:
                conn.exec_driver_sql("VACUUM")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            done["sqlite"] = "checkpoint+vacuum" if full else "checkpoint"
        else:
            verb = "VACUUM (FULL, ANALYZE)" if full else "VACUUM (ANALYZE)"
            for name in names:
                conn.exec_driver_sql(f'{verb} "{name}"')
            done["postgresql"] = f"{verb} on {len(names)} tables"
    return done


def refresh_statistics(engine: Engine, *, only_if_missing: bool = False) -> bool:
    """ANALYZE, so the planner knows a scope filter matches half the table, not a handful.

    Without statistics SQLite answers "my team's customers, newest first" by collecting and
    sorting every team row (34 ms at 100,000 customers) instead of walking the primary key
    (0.07 ms). Returns whether statistics were computed.
    """
    with engine.connect() as conn:
        if only_if_missing and engine.dialect.name == "sqlite":
            has = conn.exec_driver_sql(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).scalar_one()
            if has:
                return False
        elif only_if_missing:
            return False  # PostgreSQL's autovacuum keeps statistics current
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return True


class SQLiteWriteLock:
    """The single-writer lock for a SQLite file: threads of this process, then other processes.

    The thread lock comes first because ``flock`` is held by the open file, not by the thread.
    """

    def __init__(self, database_path: str) -> None:
        self._threads = threading.Lock()
        self._path = database_path + ".writelock"
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


class Database:
    """Owns the engine (or, in tests, one connection) and hands out units of work."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.bind = bind
        self.sqlite = is_sqlite(bind)
        # Bound to a connection (tests): each unit is a savepoint inside the outer transaction.
        self._sessions = sessionmaker(
            bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        # Read units on SQLite run each statement in autocommit: readers never block in WAL mode
        # and skipping BEGIN/COMMIT saves two round trips on the hottest path.
        read_bind = (
            bind.execution_options(**{_BEGIN_OPTION: "NONE"})
            if self.sqlite and not isinstance(bind, Connection)
            else bind
        )
        self._read_sessions = sessionmaker(
            bind=read_bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        self._write_lock: threading.Lock | SQLiteWriteLock | None = None
        if self.sqlite:
            path = bind.url.database if isinstance(bind, Engine) else None
            # A file database may be shared by several server processes: they queue on a file lock
            # (woken the moment it is free) instead of SQLite's sleeping busy handler.
            self._write_lock = SQLiteWriteLock(path) if path and path != ":memory:" else threading.Lock()
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopBatcher] = (
            weakref.WeakKeyDictionary()
        )

    def _begin_writes(self, session: Session) -> None:
        if self.sqlite:
            session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})

    @contextmanager
    def unit(self, *, write: bool) -> Iterator[Session]:
        """One transaction: commits (with its audit events) on success, rolls back on error.

        Denied or failed attempts are still recorded after a rollback: an audit trail that forgets
        refused access would hide exactly what it exists to show.
        """
        session = self._sessions()
        try:
            if write:
                with self._write_lock or nullcontext():
                    self._begin_writes(session)
                    try:
                        yield session
                        append_events(session, session.info.get("audit", []))
                        session.commit()
                        # Only now are they stored: if the commit fails, the denied ones are kept.
                        session.info.pop("audit", None)
                    except BaseException:
                        session.rollback()
                        raise
            else:
                try:
                    yield session
                    events: list[PendingEvent] = session.info.pop("audit", [])
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
                if events:
                    self.append_audit(session, events)
        except BaseException:
            kept = [e for e in session.info.pop("audit", []) if e.outcome != "ok"]
            if kept:
                self.append_audit(session, kept)
            raise
        finally:
            session.close()

    @asynccontextmanager
    async def read_unit(self) -> AsyncIterator[Session]:
        """A read-only unit run on the event loop: no thread hop, no lock.

        SQLite readers never block in WAL mode, so the queries run inline; the audit events they
        queue are awaited from the group-commit writer, letting concurrent readers share one
        write transaction.
        """
        session = self._read_sessions()
        try:
            try:
                yield session
                events: list[PendingEvent] = session.info.pop("audit", [])
                session.commit()
            except BaseException:
                session.rollback()
                raise
            if events:
                await self.append_audit_async(session, events)
        except BaseException:
            kept = [e for e in session.info.pop("audit", []) if e.outcome != "ok"]
            if kept:
                await self.append_audit_async(session, kept)
            raise
        finally:
            session.close()

    async def append_audit_async(self, session: Session, events: list[PendingEvent]) -> None:
        if not isinstance(self.bind, Engine):
            self.append_audit(session, events)
            return
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = _LoopBatcher(self)
        await batcher.submit(events)

    def append_audit(self, session: Session, events: list[PendingEvent]) -> None:
        """Store events outside the caller's (finished) transaction, before it answers."""
        if isinstance(self.bind, Engine):
            self.append_batch(events)
            return
        with self._write_lock or nullcontext():
            self._begin_writes(session)
            append_events(session, events)
            session.commit()

    def append_batch(self, events: list[PendingEvent]) -> None:
        """One write transaction holding ``events`` (used by the group-commit writer)."""
        with self._write_lock or nullcontext():
            session = self._sessions()
            try:
                self._begin_writes(session)
                append_events(session, events)
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def dispose(self) -> None:
        if isinstance(self.bind, Engine):
            self.bind.dispose()


class _LoopBatcher:
    """Group commit for requests served on an event loop.

    Requests park an asyncio future; one flush at a time writes everything parked so far in a
    worker thread. While it writes, new events gather for the next flush, so under load many
    requests share one transaction and no request is answered before its events are stored.
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._pending: list[tuple[list[PendingEvent], asyncio.Future[None]]] = []
        self._flushing = False

    async def submit(self, events: list[PendingEvent]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, done))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await run_in_threadpool(self._db.append_batch, [e for evs, _ in batch for e in evs])
                except BaseException as exc:  # every waiting request learns its events failed
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_result(None)
        finally:
            self._flushing = False


def record_audit(session: Session, event_: PendingEvent) -> None:
    """Queue an audit event on the unit of work; it is chained and stored at commit."""
    session.info.setdefault("audit", []).append(event_)
