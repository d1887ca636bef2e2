"""Set-up shared by the import job tests."""

from __future__ import annotations

from pathlib import Path

from rapport.access.principal import Principal
from rapport.db import Database
from rapport.ingest import jobs


def queue_upsert(database: Database, principal: Principal, path: Path, *, batch_size: int) -> int:
    """Id of a queued customer import of ``path`` by ``principal``, upserting on external id."""
    with database.unit(write=True) as session:
        job = jobs.create_job(
            session,
            principal,
            path,
            kind="customers",
            mode="upsert",
            match_keys=["external_id"],
            mapping=None,
            batch_size=batch_size,
        )
    return int(job["id"])
