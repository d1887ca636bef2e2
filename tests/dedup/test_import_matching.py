"""Imports ask the duplicate-detection model about rows no match key found (``match_duplicates``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from rapport.db import Database
from rapport.dedup import service
from rapport.ingest import jobs
from rapport.models import Customer
from rapport.models.base import table_of
from tests.dedup.fixture import plant
from tests.factories import Factory
from tests.ingest.test_jobs import _principal, _write

# The planted 王小明 (A, and his duplicate A2) in traditional characters, with his phone typed with
# spaces and his birth date: no external id, so only the model can tell who he is.
ROW = ["王曉明,+86 138 1234 5678,1985-03-02,杭州"]
HEADER = "姓名,手机,生日,城市\n"


def _import(database: Database, factory: Factory, path: Path, *, duplicates: bool) -> dict[str, object]:
    p = _principal(factory, "admin")
    with database.unit(write=True) as session:
        job = jobs.create_job(
            session,
            p,
            path,
            kind="customers",
            mode="upsert",
            match_keys=["external_id"],
            mapping=None,
            options={"match_duplicates": duplicates},
        )
    return jobs.run_job(database, job["id"])


def _customers(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(table_of(Customer))).scalar_one())


def test_a_probable_duplicate_updates_the_existing_customer(
    tmp_path: Path, database: Database, factory: Factory, db: Session, connection: Connection
) -> None:
    planted = plant(factory)
    service.scan(db, threshold=0.95)
    before = _customers(connection)
    result = _import(database, factory, _write(tmp_path, "d.csv", ROW, HEADER), duplicates=True)
    assert (result["created"], result["updated"], result["rejected"]) == (0, 1, 0)
    assert _customers(connection) == before
    cities = connection.execute(
        select(table_of(Customer).c.city).where(
            table_of(Customer).c.id.in_([planted.ids["A"], planted.ids["A2"]])
        )
    ).scalars()
    assert "杭州" in set(cities)


def test_without_the_option_the_same_row_creates_a_new_customer(
    tmp_path: Path, database: Database, factory: Factory, db: Session, connection: Connection
) -> None:
    plant(factory)
    service.scan(db, threshold=0.95)
    before = _customers(connection)
    result = _import(database, factory, _write(tmp_path, "d.csv", ROW, HEADER), duplicates=False)
    assert (result["created"], result["updated"]) == (1, 0)
    assert _customers(connection) == before + 1
