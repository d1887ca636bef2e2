"""Engines, the per-request/per-job unit of work, and SQLite's single-writer discipline.

SQLite allows one writer at a time and a read transaction cannot be upgraded once another
connection has written. So write units start with ``BEGIN IMMEDIATE`` under a process lock, and a
read unit that must record audit events ends its read snapshot first, then appends them in a
short write transaction of its own. PostgreSQL needs none of this.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

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
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


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
        self._write_lock: threading.Lock | None = threading.Lock() if self.sqlite else None

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
                        append_events(session, session.info.pop("audit", []))
                        session.commit()
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

    def append_audit(self, session: Session, events: list[PendingEvent]) -> None:
        lock = self._write_lock or nullcontext()
        with lock:
            self._begin_writes(session)
            append_events(session, events)
            session.commit()

    def dispose(self) -> None:
        if isinstance(self.bind, Engine):
            self.bind.dispose()


def record_audit(session: Session, event_: PendingEvent) -> None:
    """Queue an audit event on the unit of work; it is chained and stored at commit."""
    session.info.setdefault("audit", []).append(event_)
