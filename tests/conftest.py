"""Test database, per-test rolled-back transactions, the app and authenticated clients.

Set RAPPORT_TEST_DATABASE_URL to run the suite on PostgreSQL; the default is a SQLite file. Each
run migrates a fresh database (PostgreSQL: a private schema) with Alembic, so tests exercise the
real migrations.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from rapport import migrate
from rapport.app import create_app
from rapport.auth import mfa
from rapport.config import Settings
from rapport.db import Database, make_engine
from rapport.security import crypto
from tests.factories import Factory

PG_URL = os.environ.get("RAPPORT_TEST_DATABASE_URL")
# One field-encryption master key for the whole run, app and CLI alike (no key file in the tree).
os.environ.setdefault("RAPPORT_MASTER_KEY", secrets.token_hex(32))


def _fresh_url(tmp: Path) -> tuple[str, str | None]:
    """A URL to an empty database, and the PostgreSQL schema to drop afterwards."""
    if PG_URL:
        schema = f"t_{secrets.token_hex(6)}"
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema
    return f"sqlite:///{tmp / 'test.db'}", None


def _drop_schema(schema: str | None) -> None:
    if schema and PG_URL:
        admin = make_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rapport-test-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, secret_key="test-secret-" + "x" * 32, database_url=None, tune_gc=False)


@pytest.fixture(autouse=True)
def _field_encryption(settings: Settings) -> None:
    """Field encryption on, under the run's master key, whatever an earlier test configured."""
    crypto.configure_from_settings(settings)


@pytest.fixture(scope="session")
def engine(data_dir: Path) -> Iterator[Engine]:
    url, schema = _fresh_url(data_dir)
    migrate.upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()
    _drop_schema(schema)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    trans = conn.begin()
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def database(connection: Connection) -> Database:
    return Database(connection)


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """A session for arranging and inspecting data inside the test's transaction.

    Deliberately not a Database unit: a unit holds SQLite's process write lock for its whole
    life, and requests made through ``client`` in the same test need that lock.
    """
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()


@pytest.fixture
def factory(connection: Connection) -> Factory:
    return Factory(connection)


@pytest.fixture
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database)


MFA_T0 = 1_800_000_000.0  # a fixed instant, at the start of a 30 s step


@pytest.fixture
def mfa_clock(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Two-factor codes are checked at ``mfa_clock[0]`` (set it to move time); the login throttle
    starts and ends empty."""
    now = [MFA_T0]
    monkeypatch.setattr(mfa, "clock", lambda: now[0])
    app.state.throttle.reset()
    yield now
    app.state.throttle.reset()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def committed_db(data_dir: Path, settings: Settings) -> Iterator[Database]:
    """A separate, really-committing database for concurrency tests."""
    sub = data_dir / secrets.token_hex(4)
    sub.mkdir()
    url, schema = _fresh_url(sub)
    migrate.upgrade(url)
    database = Database(make_engine(url))
    yield database
    database.dispose()
    _drop_schema(schema)
