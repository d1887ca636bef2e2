"""The request unit of work under load: writers queueing for SQLite's lock must not starve it."""

from __future__ import annotations

import threading

import anyio
import httpx
import pytest
from sqlalchemy import Engine, func, select

from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database
from rapport.models import Customer
from tests.factories import Factory

WRITERS = 6


def test_writers_waiting_for_the_write_lock_do_not_starve_the_holder(
    settings: Settings, committed_db: Database
) -> None:
    """More concurrent writers than worker threads must all finish (no deadlock).

    A writer blocked on the write lock (SQLite) or on a row the first writer locked (PostgreSQL:
    one owner's customers share a dashboard rollup row) holds one of the shared worker tokens;
    once they are all taken the lock holder cannot run its endpoint or commit.
    """
    assert isinstance(committed_db.bind, Engine)
    with committed_db.bind.begin() as conn:
        factory = Factory(conn)
        headers = factory.auth(factory.user("sales_rep", factory.team()))
    app = create_app(settings, committed_db)
    statuses: list[int] = []

    async def main() -> None:
        # Few worker threads make the starvation certain instead of load-dependent.
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def post(i: int) -> None:
                r = await client.post("/api/v1/customers", json={"display_name": f"并发{i}"}, headers=headers)
                statuses.append(r.status_code)

            async with anyio.create_task_group() as tg:
                for i in range(WRITERS):
                    tg.start_soon(post, i)

    runner = threading.Thread(target=anyio.run, args=(main,), daemon=True)
    runner.start()
    runner.join(timeout=30)
    if runner.is_alive():
        pytest.fail("concurrent writers deadlocked on the write lock")
    assert statuses == [201] * WRITERS
    with committed_db.unit(write=False) as session:
        count = session.execute(select(func.count()).select_from(Customer)).scalar_one()
    assert count == WRITERS
