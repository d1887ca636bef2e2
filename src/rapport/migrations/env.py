"""Alembic environment: the URL comes from Rapport's settings unless the caller passes one."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from rapport.config import get_settings
from rapport.db import make_engine
from rapport.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
    if url.startswith("sqlite"):
        get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # Batch migrations rebuild a table by copying it and dropping the original; with foreign
            # keys enforced, that drop would cascade to (delete) every child row. The pragma only
            # takes effect outside a transaction, so it goes straight to the driver before Alembic
            # begins one.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `rapport db upgrade`")
run()
