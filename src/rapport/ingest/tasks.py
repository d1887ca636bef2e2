"""Background duties of the import jobs inside the server: find the ones nobody runs any more.

A job started through the API runs in the server's thread pool; a restart or crash leaves it
``running`` with a dead runner. The app's lifespan calls ``sweep`` once at start-up and then
``sweep_forever`` every ``import_sweep_seconds``, so such jobs turn ``interrupted`` (shown by
the API, the workspace and ``rapport import status``) and can be resumed.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from rapport.config import Settings
from rapport.db import Database
from rapport.ingest import jobs

log = logging.getLogger("rapport.ingest")


def sweep(database: Database, settings: Settings) -> list[int]:
    """One pass; a failure (database not migrated yet, briefly unreachable) is logged, not raised:
    start-up must not depend on it."""
    try:
        ids = jobs.interrupt_stale(database, stale_seconds=settings.import_stale_seconds)
    except Exception:
        log.warning("could not look for interrupted imports", exc_info=True)
        return []
    if ids:
        log.warning("imports %s were interrupted (their process is gone); resume them", ids)
    return ids


async def sweep_forever(database: Database, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.import_sweep_seconds)
        await run_in_threadpool(sweep, database, settings)
