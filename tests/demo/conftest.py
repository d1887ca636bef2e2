"""Really-committing, freshly migrated databases for loads and CLI runs (SQLite file or PG schema)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from rapport import migrate
from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database, make_engine
from tests.conftest import _drop_schema, _fresh_url


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Call to get the URL of a new, migrated, empty database; all are dropped afterwards."""
    schemas: list[str | None] = []

    def make() -> str:
        sub = tmp_path / f"db{len(schemas)}"
        sub.mkdir()
        url, schema = _fresh_url(sub)
        schemas.append(schema)
        migrate.upgrade(url)
        return url

    yield make
    for schema in schemas:
        _drop_schema(schema)


@pytest.fixture
def engines() -> Iterator[Callable[[str], Engine]]:
    made: list[Engine] = []

    def make(url: str) -> Engine:
        made.append(make_engine(url))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()


def api_client(settings: Settings, engine: Engine) -> TestClient:
    """The real app on a committing database, as a browser or curl would see it."""
    return TestClient(create_app(settings, Database(engine)), raise_server_exceptions=False)
