from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, select, text
from sqlalchemy.orm import Session

from rapport import migrate
from rapport.audit.chain import PendingEvent
from rapport.db import Database, SQLiteWriteLock, make_engine, record_audit, refresh_statistics
from rapport.models import AuditEvent


def test_refresh_statistics_makes_sqlite_walk_the_primary_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stats.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO team (id, name, version) VALUES (1, 'a', 1), (2, 'b', 1)"))
        conn.execute(
            text(
                "INSERT INTO customer (display_name, lifecycle_stage, team_id, attributes, version) "
                "SELECT 'c' || value, 'lead', 1 + value % 2, '{}', 1 FROM json_each(:ids)"
            ),
            {"ids": "[" + ",".join(str(i) for i in range(2000)) + "]"},
        )
    plan_sql = (
        "EXPLAIN QUERY PLAN SELECT id FROM customer WHERE deleted_at IS NULL "
        "AND (team_id = 1 OR owner_id = 7) ORDER BY id DESC LIMIT 51"
    )
    with engine.connect() as conn:
        before = " ".join(r[3] for r in conn.exec_driver_sql(plan_sql))
    assert "TEMP B-TREE" in before
    assert refresh_statistics(engine, only_if_missing=True) is True
    assert refresh_statistics(engine, only_if_missing=True) is False
    with engine.connect() as conn:
        after = " ".join(r[3] for r in conn.exec_driver_sql(plan_sql))
    assert after == "SCAN customer"
    engine.dispose()


_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("busy")
else:
    print("free")
"""


def _other_process_sees(lock_file: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(lock_file)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_sqlite_write_lock_excludes_other_processes_until_released(tmp_path: Path) -> None:
    db_file = tmp_path / "shared.db"
    lock = SQLiteWriteLock(str(db_file))
    lock_file = tmp_path / "shared.db.writelock"
    with lock:
        assert _other_process_sees(lock_file) == "busy"
    assert _other_process_sees(lock_file) == "free"
    with lock:  # re-acquirable after release, by any thread
        assert _other_process_sees(lock_file) == "busy"


def test_file_database_uses_the_process_lock_and_a_test_connection_does_not(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    on_file = Database(engine)
    assert isinstance(on_file._write_lock, SQLiteWriteLock)
    with engine.connect() as conn:
        assert not isinstance(Database(conn)._write_lock, SQLiteWriteLock)
    on_file.dispose()


def test_denied_events_survive_a_commit_that_fails(database: Database, connection: Connection) -> None:
    class Boom(Exception):
        pass

    def fail_once(_session: Session) -> None:
        raise Boom

    def attempt() -> None:
        with database.unit(write=True) as session:
            denied = PendingEvent(action="access", resource="customer", record_id="7", outcome="denied")
            record_audit(session, denied)
            record_audit(session, PendingEvent(action="update", resource="customer", record_id="8"))
            event.listen(session, "before_commit", fail_once, once=True)

    with pytest.raises(Boom):
        attempt()
    rows = connection.execute(select(AuditEvent.action, AuditEvent.record_id, AuditEvent.outcome)).all()
    assert [tuple(r) for r in rows] == [("access", "7", "denied")]
