"""Set-up shared by the import job tests."""

from __future__ import annotations

from pathlib import Path

from rapport.access.principal import Principal
from rapport.db import Database
from rapport.ingest import jobs


def queue_upsert(
    database: Database,
    principal: Principal,
    path: Path,
    *,
    batch_size: int,
    match_keys: tuple[str, ...] = ("external_id",),
) -> int:
    """Id of a queued customer import of ``path`` by ``principal``, upserting on ``match_keys``."""
    with database.unit(write=True) as session:
        job = jobs.create_job(
            session,
            principal,
            path,
            kind="customers",
            mode="upsert",
            match_keys=list(match_keys),
            mapping=None,
            batch_size=batch_size,
        )
    return int(job["id"])


def children_running(module: str, parent: int) -> list[int]:
    """Live processes running ``python -m module`` whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z" and module.encode() in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
