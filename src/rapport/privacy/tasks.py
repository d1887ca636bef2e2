"""Scheduled privacy jobs: the retention purge and overdue request alerts (system principal).

Run daily from cron or a systemd timer (README "Retention"), e.g. ``rapport privacy purge`` and
``rapport privacy requests --overdue --notify``; or call these from another scheduler.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Engine

from rapport.access.principal import Principal
from rapport.config import Settings
from rapport.db import Database, compact_storage
from rapport.privacy import requests
from rapport.privacy.erasure import ERASED_TABLES, ErasureReport, erase_customer
from rapport.privacy.retention import PurgeReport, Rule, purge, touched_tables


def run_purge(
    database: Database,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    vacuum: bool = True,
    settings: Settings | None = None,
    progress: Callable[[Rule, int], None] | None = None,
) -> PurgeReport:
    """One committed purge; afterwards the freed space is scrubbed (see compact_storage).

    The scrub runs even when no rule matched: erasures completed through the API since the last
    run (which only checkpoint) get their VACUUM here.
    """
    with database.unit(write=True) as session:
        report = purge(session, now=now, dry_run=dry_run, settings=settings, progress=progress)
    if not dry_run and isinstance(database.bind, Engine):
        tables = list(dict.fromkeys([*ERASED_TABLES, *touched_tables(report)]))
        compact_storage(database.bind, tables, full=vacuum)
    return report


def scrub_after_erasure(database: Database) -> None:
    """Cheap part of the scrub, right after an API erasure committed: checkpoint, no VACUUM."""
    if isinstance(database.bind, Engine):
        compact_storage(database.bind, ERASED_TABLES, full=False)


def run_erasure(
    database: Database, customer_id: int, *, actor: Principal, reason: str, vacuum: bool = True
) -> ErasureReport:
    """Erase one person and scrub the freed space once the erasure committed."""
    with database.unit(write=True) as session:
        report = erase_customer(session, customer_id, actor=actor, reason=reason)
    if isinstance(database.bind, Engine):
        compact_storage(database.bind, ERASED_TABLES, full=vacuum)
    return report


def notify_overdue_requests(database: Database, *, now: dt.datetime | None = None) -> list[int]:
    with database.unit(write=True) as session:
        return requests.notify_overdue(session, now)
