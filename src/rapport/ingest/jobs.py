"""Import jobs: create, run in committed batches with a checkpoint, cancel, resume, revert.

Why this module commits (services normally only flush): a job owns its transactions. Each batch
is one write unit holding the batch's rows, its rejections, its before-images, its audit events
and the job's checkpoint (the last source line done) and counts. A process killed at any moment
(``kill -9``) therefore leaves whole batches only, and the checkpoint says exactly which: the
next run (``rapport import resume JOB``, or the API's job runner) reads the file again, skips
every line up to the checkpoint and continues.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, exists, insert, or_, select, true, update
from sqlalchemy.orm import Session

from rapport.access.policy import Action, Role, Scope
from rapport.access.principal import SYSTEM, Principal
from rapport.access.records import Records
from rapport.access.specs import CONTACT_POINT, CUSTOMER, IMPORT, INTERACTION, ORDER, ORGANISATION, TASK
from rapport.config import Settings, get_settings
from rapport.db import Database
from rapport.errors import Conflict, Forbidden, InvalidInput, NotFound
from rapport.exports.writers import no_cycle_collection
from rapport.ingest import repository as repo
from rapport.ingest.readers import ReadError, Row, read_rows
from rapport.ingest.service import (
    CUSTOMER_COLUMNS,
    BatchResult,
    CustomerImporter,
    Matcher,
    OrderImporter,
    PreparedCustomers,
    RecordImporter,
    check_mapping,
    proposed_mapping,
)
from rapport.ingest.workers import prepared_batches
from rapport.models import ApiKey, CustomerSearchTerm, User
from rapport.models.base import table_of, utcnow
from rapport.pagination import CursorCodec
from rapport.privacy import erasure
from rapport.security.crypto import blind_index_key

JOBS, CHANGES, REJECTIONS = repo.JOBS, repo.CHANGES, repo.REJECTIONS
TERMS = table_of(CustomerSearchTerm)
TERMINAL = frozenset({"cancelled", "done", "reverted"})
# Stopped without finishing; ``resume`` continues from the checkpoint.
RESUMABLE = frozenset({"interrupted", "failed"})
Progress = Callable[[dict[str, Any]], None]
_CODEC = CursorCodec(secrets.token_hex(16))  # jobs never paginate; Records wants a codec


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def headers_of(path: Path) -> list[str]:
    """The column names of a file: the keys of its first row."""
    for row in read_rows(path):
        return list(row.values)
    return []


def revert_days() -> int:
    return get_settings().import_revert_days


# -- visibility ---------------------------------------------------------------------------------------


def _visible(principal: Principal) -> Any:
    grant = principal.grant(IMPORT.name)
    if principal.kind == "system" or grant.scope is Scope.all:
        return true()
    mine = JOBS.c.created_by == principal.user_id
    if grant.scope is Scope.team and principal.team_id is not None:
        return or_(mine, JOBS.c.team_id == principal.team_id)
    return mine


def get_job(
    session: Session, principal: Principal, job_id: int, action: Action = Action.read
) -> dict[str, Any]:
    if not principal.can(IMPORT.name, Action.read):
        raise Forbidden("your role may not use imports")
    row = session.execute(select(JOBS).where(JOBS.c.id == job_id, _visible(principal))).mappings().first()
    if row is None:
        raise NotFound(f"import {job_id} not found")
    if not principal.can(IMPORT.name, action):
        raise Forbidden(f"your role may not {action.value} imports")
    return dict(row)


def list_jobs(session: Session, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """The newest imports the caller may see (their own, their team's or all, by grant)."""
    if not principal.can(IMPORT.name, Action.read):
        raise Forbidden("your role may not use imports")
    rows = session.execute(
        select(JOBS).where(_visible(principal)).order_by(JOBS.c.id.desc()).limit(limit)
    ).mappings()
    return [job_view(dict(r)) for r in rows]


def job_view(job: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in job.items() if k != "file_path"}
    end = job.get("finished_at")
    out["revertible_until"] = (
        end + dt.timedelta(days=revert_days()) if end and job["status"] != "reverted" else None
    )
    return out


def summary(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": job["id"],
        "status": job["status"],
        "rows": job["rows_done"],
        "created": job["created_count"],
        "updated": job["updated_count"],
        "unchanged": job["unchanged_count"],
        "rejected": job["rejected_count"],
        "checkpoint_line": job["checkpoint_line"],
    }


def principal_of(session: Session, job: dict[str, Any]) -> Principal:
    """Who the job acts as: its creator with their current role and team (or the system); a job
    started with an API key keeps that key's scopes, and only while the key is still valid."""
    if job["actor_kind"] == "system" or job["created_by"] is None:
        return SYSTEM
    u = session.execute(
        select(User.username, User.role, User.team_id, User.is_active).where(User.id == job["created_by"])
    ).one()
    if not u.is_active:
        raise Forbidden("the user who started this import is disabled")
    scopes = None
    if job["actor_kind"] == "api_key":
        key = session.execute(
            select(ApiKey.revoked_at, ApiKey.expires_at, ApiKey.user_id).where(ApiKey.id == job["api_key_id"])
        ).first()
        if key is None or key.revoked_at is not None or key.user_id != job["created_by"]:
            raise Forbidden("the API key that started this import is revoked")
        if key.expires_at is not None and key.expires_at <= utcnow():
            raise Forbidden("the API key that started this import has expired")
        scopes = frozenset(job["scopes"] or ())
    return Principal(
        user_id=job["created_by"],
        username=u.username,
        role=Role(u.role),
        team_id=u.team_id,
        kind=job["actor_kind"],
        scopes=scopes,
        api_key_id=job["api_key_id"],
    )


_TARGETS = {
    "customers": CUSTOMER,
    "orders": ORDER,
    "organisations": ORGANISATION,
    "interactions": INTERACTION,
}


def require_writes(principal: Principal, kind: str, mode: str) -> None:
    """An import writes only what its caller may write directly: the role, narrowed by an API
    key's scopes. Checked when the job is created and again (by the importers) on every run."""
    spec = _TARGETS[kind]
    needed = [Action.create] if kind == "interactions" else []
    if kind != "interactions":
        if mode in ("create", "upsert"):
            needed.append(Action.create)
        if mode in ("update", "upsert"):
            needed.append(Action.update)
    for action in needed:
        if not principal.can(spec.name, action):
            what = "this API key" if principal.kind == "api_key" else "your role"
            raise Forbidden(f"{what} may not {action.value} {spec.name.replace('_', ' ')} records")


# -- runners -----------------------------------------------------------------------------------------
#
# A job records which process runs it and when that process last committed a batch. A server
# restart (or kill -9) leaves "running" jobs behind; whoever looks next (the server at start-up and
# every ``import_sweep_seconds``, ``rapport import status`` and ``resume``) marks them interrupted.

_START_TOKEN = secrets.token_hex(4)  # tells a restarted process from an old one that had its pid


def _host() -> str:
    return socket.gethostname()[:100] or "localhost"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()[:36]
    except OSError:
        return "unknown"


def runner_id() -> str:
    """This process as a job runner: host, machine boot, pid and the token drawn at start."""
    return f"{_host()}/{_boot_id()}/{os.getpid()}/{_START_TOKEN}"


def runner_alive(runner: str | None) -> bool | None:
    """Whether the process that ``runner`` names is still there; None when this host cannot tell
    (another machine, or no runner recorded): then the heartbeat decides."""
    parts = (runner or "").rsplit("/", 3)
    if len(parts) != 4 or parts[0] != _host():
        return None
    _, boot, pid_text, run_token = parts
    token = run_token.split(":", 1)[0]  # after the colon: which run of that process
    if boot != _boot_id():
        return False  # the machine restarted since
    try:
        pid = int(pid_text)
    except ValueError:
        return None
    if pid == os.getpid():
        return token == _START_TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def stale_reason(job: dict[str, Any], now: dt.datetime, stale_after: dt.timedelta) -> str | None:
    """Why a queued or running job has nobody working on it any more (None: it is fine)."""
    if job["status"] == "running":
        if runner_alive(job["runner_id"]) is False:
            return "the process running this import stopped"
        beat = job["heartbeat_at"] or job["updated_at"]
        if beat < now - stale_after:
            return f"no progress since {beat:%Y-%m-%d %H:%M:%S} UTC; the process running it is gone"
    elif job["status"] == "queued" and job["updated_at"] < now - stale_after:
        return "it was queued but never started (the server stopped first)"
    return None


def interrupt_stale(
    database: Database, *, now: dt.datetime | None = None, stale_seconds: int | None = None
) -> list[int]:
    """Mark the queued or running jobs nobody runs any more ``interrupted`` (``cancelled`` when a
    cancel was pending); returns their ids. Cheap when there are none: one read."""
    now = now or utcnow()
    stale_after = dt.timedelta(seconds=stale_seconds or get_settings().import_stale_seconds)
    cols = (
        JOBS.c.id,
        JOBS.c.status,
        JOBS.c.runner_id,
        JOBS.c.heartbeat_at,
        JOBS.c.updated_at,
        JOBS.c.cancel_requested,
    )
    with database.unit(write=False) as session:
        active = [
            dict(r)
            for r in session.execute(select(*cols).where(JOBS.c.status.in_(("queued", "running")))).mappings()
        ]
    candidates = [(j, r) for j in active if (r := stale_reason(j, now, stale_after)) is not None]
    if not candidates:
        return []
    done: list[int] = []
    with database.unit(write=True) as session:
        recs = Records(session, SYSTEM, _CODEC)
        for job, reason in candidates:
            final = "cancelled" if job["cancel_requested"] else "interrupted"
            # Compare-and-set: a runner that committed a batch meanwhile keeps its job.
            changed = session.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == job["id"],
                    JOBS.c.status == job["status"],
                    JOBS.c.updated_at == job["updated_at"],
                )
                .values(
                    status=final,
                    error=None if final == "cancelled" else f"interrupted: {reason}; resume continues it",
                    finished_at=now,
                    updated_at=now,
                )
            ).rowcount  # type: ignore[attr-defined]
            if changed:
                recs.audit(
                    "interrupt", "import", job["id"], details={"runner": job["runner_id"], "status": final}
                )
                done.append(int(job["id"]))
    return done


def resume_job(session: Session, principal: Principal, job_id: int) -> dict[str, Any]:
    """Queue an interrupted or failed job again (the caller then runs it, from its checkpoint)."""
    job = get_job(session, principal, job_id, Action.update)
    stale = stale_reason(job, utcnow(), dt.timedelta(seconds=get_settings().import_stale_seconds))
    if job["status"] == "running" and stale is None:
        raise Conflict(f"import {job_id} is running (in {job['runner_id']}); cancel it or wait")
    if job["status"] not in RESUMABLE | {"running", "queued"}:
        raise Conflict(
            f"import {job_id} is {job['status']}; only interrupted or failed imports can be resumed"
        )
    _set(session, job_id, status="queued", runner_id=None, cancel_requested=False)
    Records(session, principal, _CODEC).audit("resume", "import", job_id)
    return get_job(session, principal, job_id)


# -- create ------------------------------------------------------------------------------------------


def create_job(
    session: Session,
    principal: Principal,
    path: Path,
    *,
    kind: str,
    mode: str,
    match_keys: list[str],
    mapping: dict[str, str | None] | None,
    batch_size: int = 5000,
    file_name: str | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if not principal.can(IMPORT.name, Action.create):
        raise Forbidden("your role may not start imports")
    if kind not in ("customers", "orders", "organisations", "interactions"):
        raise InvalidInput(f"kind: unknown import kind {kind!r}")
    headers = headers_of(path)
    if mapping is None:
        mapping = proposed_mapping(kind, headers)
    else:
        unknown = [c for c in mapping if c not in headers]
        if unknown:
            raise InvalidInput(
                f"mapping: column {unknown[0]!r} is not in the file",
                errors=[
                    {
                        "loc": ["body", "mapping", c],
                        "field": f"mapping.{c}",
                        "message": "not a column of the file",
                        "type": "mapping",
                    }
                    for c in unknown
                ],
            )
    check_mapping(kind, mapping)
    require_writes(principal, kind, mode)
    now = utcnow()
    values = {
        "kind": kind,
        "status": "queued",
        "mode": mode,
        "match_keys": match_keys,
        "mapping": mapping,
        "options": options or {},
        "file_name": (file_name or path.name)[:300],
        "file_path": str(path.resolve()),
        "file_digest": file_digest(path),
        "file_size": path.stat().st_size,
        "batch_size": batch_size,
        "checkpoint_line": 0,
        "batches_done": 0,
        "rows_done": 0,
        "created_count": 0,
        "updated_count": 0,
        "unchanged_count": 0,
        "rejected_count": 0,
        "created_by": principal.user_id,
        "team_id": principal.team_id,
        "actor_kind": principal.kind,
        "api_key_id": principal.api_key_id if principal.kind == "api_key" else None,
        "scopes": sorted(principal.scopes) if principal.scopes is not None else None,
        "cancel_requested": False,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    job_id = session.execute(insert(JOBS).values(**values).returning(JOBS.c.id)).scalar_one()
    Records(session, principal, _CODEC).audit(
        "create", "import", job_id, details={"kind": kind, "mode": mode}
    )
    return get_job(session, principal, job_id)


# -- run ---------------------------------------------------------------------------------------------


def importer_for(
    recs: Records, job: dict[str, Any], matcher: Matcher | None = None
) -> CustomerImporter | OrderImporter | RecordImporter:
    options = job.get("options") or {}
    day_first = bool(options.get("day_first", True))
    if matcher is None and options.get("match_duplicates") and job["kind"] == "customers":
        # Imported here: duplicate detection pulls in Splink, which plain imports do not need.
        from rapport.dedup.service import import_matcher

        matcher = import_matcher
    if job["kind"] in ("organisations", "interactions"):
        return RecordImporter(
            recs,
            job_id=job["id"],
            kind=job["kind"],
            mapping=job["mapping"],
            mode=job["mode"],
            match_keys=job["match_keys"],
            day_first=day_first,
        )
    if job["kind"] == "orders":
        return OrderImporter(
            recs,
            job_id=job["id"],
            mapping=job["mapping"],
            mode=job["mode"],
            match_keys=job["match_keys"],
            day_first=day_first,
        )
    return CustomerImporter(
        recs,
        job_id=job["id"],
        mapping=job["mapping"],
        mode=job["mode"],
        match_keys=job["match_keys"],
        day_first=day_first,
        matcher=matcher,
    )


def batches(rows: Iterator[Row], size: int, key: Callable[[Row], str] | None = None) -> Iterator[list[Row]]:
    """Rows in lists of ``size``; with ``key``, a batch never splits rows sharing a key (an order)."""
    batch: list[Row] = []
    for row in rows:
        if len(batch) >= size and (key is None or key(row) != key(batch[-1])):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _set(session: Session, job_id: int, **values: Any) -> None:
    session.execute(update(JOBS).where(JOBS.c.id == job_id).values(updated_at=utcnow(), **values))


def run_job(
    database: Database,
    job_id: int,
    *,
    matcher: Matcher | None = None,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> dict[str, Any]:
    """Process the job from its checkpoint to the end (or until cancelled); returns its summary.

    ``max_batches`` stops after that many batches and releases the job (as a stopped runner would
    leave it, minus the dead process): a later run continues from the checkpoint."""
    # Per run, not per process: two threads of one server must not run the same job either.
    me = f"{runner_id()}:{secrets.token_hex(3)}"
    with database.unit(write=True) as session:
        job = dict(
            session.execute(select(JOBS).where(JOBS.c.id == job_id).with_for_update()).mappings().one()
        )
        if job["status"] in TERMINAL:
            return summary(job)
        if job["status"] == "running" and job["runner_id"] is not None:
            stale_after = dt.timedelta(seconds=get_settings().import_stale_seconds)
            if stale_reason(job, utcnow(), stale_after) is None:
                raise Conflict(f"import {job_id} is running (in {job['runner_id']}); cancel it or wait")
        path = Path(job["file_path"])
        if not path.is_file() or file_digest(path) != job["file_digest"]:
            _set(
                session,
                job_id,
                status="failed",
                error="the import file is missing or changed since the job started",
            )
            job = dict(session.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().one())
            return summary(job)
        try:
            principal = principal_of(session, job)
            require_writes(principal, job["kind"], job["mode"])
        except Forbidden as exc:
            _set(session, job_id, status="failed", error=f"not allowed: {exc.detail}", finished_at=utcnow())
            job = dict(session.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().one())
            return summary(job)
        _set(
            session,
            job_id,
            status="running",
            error=None,
            started_at=job["started_at"] or utcnow(),
            finished_at=None,
            runner_id=me,
            heartbeat_at=utcnow(),
        )
    done_batches = 0
    _refresh_statistics(database)  # the tables may have grown since they were last analysed
    try:
        with _work_of(job, path) as work:
            for last_line, count, apply in work:
                with database.unit(write=True) as session:
                    state = _locked_state(session, job_id)
                    if state.runner_id != me:
                        break  # marked interrupted meanwhile, or another process took it over
                    if state.cancel_requested or state.status != "running":
                        if state.status == "running":
                            _set(session, job_id, status="cancelled", finished_at=utcnow())
                        break
                    recs = Records(session, principal, _CODEC)
                    # A batch allocates millions of acyclic objects; reference counting frees them.
                    with _big_page_cache(session), no_cycle_collection():
                        result = apply(importer_for(recs, job, matcher))
                        _record_batch(session, job_id, last_line, count, result)
                done_batches += 1
                if done_batches & (done_batches - 1) == 0:  # after batches 1, 2, 4, 8, ...
                    _refresh_statistics(database)
                if progress is not None:
                    progress(status(database, job_id))
                if max_batches is not None and done_batches >= max_batches:
                    with database.unit(write=True) as session:
                        session.execute(
                            update(JOBS)
                            .where(JOBS.c.id == job_id, JOBS.c.runner_id == me)
                            .values(runner_id=None)
                        )
                    return status(database, job_id)
            else:
                _finish(database, job_id, me)
    except Forbidden as exc:
        # The creator's role or the key's scopes no longer allow what the file does.
        with database.unit(write=True) as session:
            _set(session, job_id, status="failed", error=f"not allowed: {exc.detail}", finished_at=utcnow())
    except ReadError as exc:
        with database.unit(write=True) as session:
            _set(
                session,
                job_id,
                status="failed",
                error=str(exc.reason if exc.line is None else f"line {exc.line}: {exc.reason}"),
                finished_at=utcnow(),
            )
    except Exception as exc:
        with database.unit(write=True) as session:
            _set(
                session,
                job_id,
                status="failed",
                error=f"{type(exc).__name__}: {exc}"[:2000],
                finished_at=utcnow(),
            )
        raise
    return status(database, job_id)


def _locked_state(session: Session, job_id: int) -> Any:
    """The job's status, cancel flag and runner, its row locked until the unit ends."""
    return session.execute(
        select(JOBS.c.cancel_requested, JOBS.c.status, JOBS.c.runner_id)
        .where(JOBS.c.id == job_id)
        .with_for_update()
    ).one()


def _finish(database: Database, job_id: int, me: str) -> None:
    with database.unit(write=True) as session:
        current = _locked_state(session, job_id)
        if current.status == "running" and current.runner_id == me:
            final = "cancelled" if current.cancel_requested else "done"
            _set(session, job_id, status=final, finished_at=utcnow())


Apply = Callable[[CustomerImporter | OrderImporter | RecordImporter], BatchResult]


def use_prepare_process(job: dict[str, Any], path: Path) -> bool:
    """Whether a customer file is prepared in a second process (``import_prepare_process``)."""
    if job["kind"] != "customers":
        return False
    setting = get_settings().import_prepare_process
    if setting == "auto":
        # Starting the process costs about a second: worth it from some ten thousand rows on.
        return (os.cpu_count() or 1) > 1 and path.stat().st_size >= _PREPARE_PROCESS_BYTES
    return setting == "always"


_PREPARE_PROCESS_BYTES = 2 << 20


@contextmanager
def _work_of(job: dict[str, Any], path: Path) -> Iterator[Iterator[tuple[int, int, Apply]]]:
    """(last line, rows, how to apply it) per batch after the checkpoint, in file order."""
    if use_prepare_process(job, path):
        with prepared_batches(
            path,
            after_line=job["checkpoint_line"],
            batch_size=job["batch_size"],
            mapping=job["mapping"],
            day_first=bool((job.get("options") or {}).get("day_first", True)),
            region=get_settings().default_phone_region,
            index_key=blind_index_key(),
        ) as stream:
            yield ((b.last_line, b.rows, _prepared_apply(b.data)) for b in stream)
        return
    rows = (r for r in read_rows(path) if r.line > job["checkpoint_line"])
    key = None
    if job["kind"] == "orders":
        column = next((c for c, t in job["mapping"].items() if t == "order_number"), None)
        key = (lambda r: r.values.get(column, "").strip()) if column else None
    yield ((b[-1].line, len(b), _rows_apply(b)) for b in batches(rows, job["batch_size"], key))


def _rows_apply(batch: list[Row]) -> Apply:
    return lambda importer: importer.apply(batch)


def _prepared_apply(data: Any) -> Apply:
    def apply(importer: CustomerImporter | OrderImporter | RecordImporter) -> BatchResult:
        assert isinstance(importer, CustomerImporter)
        return importer.apply_prepared(PreparedCustomers.unpack(data))

    return apply


# The tables whose lookups plan each batch (match keys, external ids, changes of this job).
_GROWING = ("customer", "contact_point", "customer_external_id", "import_change")


def _refresh_statistics(database: Database) -> None:
    """PostgreSQL: ANALYZE the tables an import grows, at its start and each time it doubles its batches.

    Planned on statistics from before the import (a fresh database has none), the key look-ups of
    a batch chose a nested loop over every phone number: 37 s per query at 60,000 contact points.
    Doubling keeps the statistics within a factor of two of the tables at log2(batches) ANALYZEs.
    SQLite plans these look-ups on the (kind, value_bidx) index without statistics.
    """
    with database.unit(write=True) as session:
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {', '.join(_GROWING)}")


@contextmanager
def _big_page_cache(session: Session) -> Iterator[None]:
    """SQLite: a 128 MiB page cache and a larger WAL while a batch writes (random index keys thrash
    the default 2 MiB one as the tables grow), then the connection's own settings again (it goes
    back to a pool)."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    checkpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    conn.exec_driver_sql("PRAGMA cache_size=-131072")
    # Checkpoints every 64 MiB of WAL instead of every 4 MiB: a batch rewrites the same index
    # pages, and each checkpoint copies them back into the database file again.
    conn.exec_driver_sql("PRAGMA wal_autocheckpoint=16384")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before or -2000)}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={int(checkpoint or 1000)}")


def _record_batch(session: Session, job_id: int, last_line: int, rows: int, result: BatchResult) -> None:
    repo.insert_many(
        session.connection(),
        REJECTIONS,
        [
            {"job_id": job_id, "line": r.line, "column": r.column, "field": r.field, "reason": r.reason[:500]}
            for r in result.rejections
        ],
    )
    session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id)
        .values(
            checkpoint_line=last_line,
            batches_done=JOBS.c.batches_done + 1,
            rows_done=JOBS.c.rows_done + rows,
            created_count=JOBS.c.created_count + result.created,
            updated_count=JOBS.c.updated_count + result.updated,
            unchanged_count=JOBS.c.unchanged_count + result.unchanged,
            rejected_count=JOBS.c.rejected_count + result.rejected_rows,
            updated_at=utcnow(),
            heartbeat_at=utcnow(),
        )
    )


def status(database: Database, job_id: int) -> dict[str, Any]:
    with database.unit(write=False) as session:
        return summary(dict(session.execute(select(JOBS).where(JOBS.c.id == job_id)).mappings().one()))


def preview(
    session: Session,
    principal: Principal,
    path: Path,
    *,
    kind: str,
    mode: str,
    match_keys: list[str],
    mapping: dict[str, str | None] | None,
    limit: int = 20,
    day_first: bool = True,
) -> dict[str, Any]:
    """The first ``limit`` rows after normalisation and what the import would do with each."""
    if mapping is None:
        mapping = proposed_mapping(kind, headers_of(path))
    check_mapping(kind, mapping)
    rows: list[Row] = []
    for row in read_rows(path):
        rows.append(row)
        if len(rows) >= limit:
            break
    recs = Records(session, principal, _CODEC)
    fake = {
        "id": None,
        "kind": kind,
        "mapping": mapping,
        "mode": mode,
        "match_keys": match_keys,
        "options": {"day_first": day_first},
    }
    importer = importer_for(recs, fake)
    result = importer.apply(rows, dry_run=True)
    if kind != "customers":
        return {
            "kind": kind,
            "mapping": mapping,
            "rows": [],
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejections": [
                r.__dict__
                if hasattr(r, "__dict__")
                else {"line": r.line, "column": r.column, "field": r.field, "reason": r.reason}
                for r in result.rejections
            ],
        }
    return {"kind": kind, "mapping": mapping, "rows": result.preview}


# -- cancel ------------------------------------------------------------------------------------------


def cancel_job(session: Session, principal: Principal, job_id: int) -> dict[str, Any]:
    job = get_job(session, principal, job_id, Action.update)
    if job["status"] in ("queued", "interrupted"):
        _set(session, job_id, status="cancelled", cancel_requested=True, finished_at=utcnow())
    elif job["status"] == "running":
        _set(session, job_id, cancel_requested=True)
    else:
        raise Conflict(
            f"import {job_id} is {job['status']}; "
            "only queued, running or interrupted imports can be cancelled"
        )
    Records(session, principal, _CODEC).audit("cancel", "import", job_id)
    return get_job(session, principal, job_id)


# -- abandoned uploads ---------------------------------------------------------------------------------

# A file the web import wizard stored between its upload and the start of a job: web-<uid>-<token>.
DRAFT_NAME = re.compile(r"^web-(\d+)-[0-9a-f]{16}(\.[a-z]+)$")


def upload_dir(settings: Settings) -> Path:
    """Where uploaded import files wait (the API's and the wizard's)."""
    return settings.data_dir / "imports"


def prune_uploads(
    session: Session, folder: Path, *, max_age: dt.timedelta, now: dt.datetime | None = None
) -> list[str]:
    """Delete the wizard uploads older than ``max_age`` that no job uses (never started: the user
    left the wizard); returns their names. Files of jobs, and any other file, are left alone."""
    if not folder.is_dir():
        return []
    cutoff = (now or utcnow()).timestamp() - max_age.total_seconds()
    old = {
        str(p.resolve()): p
        for p in folder.iterdir()
        if DRAFT_NAME.match(p.name) and p.is_file() and p.stat().st_mtime < cutoff
    }
    used: set[str] = set()
    for part in repo.chunks(sorted(old)):
        used.update(session.execute(select(JOBS.c.file_path).where(JOBS.c.file_path.in_(part))).scalars())
    removed = []
    for resolved, p in sorted(old.items()):
        if resolved not in used:
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


# -- rejections --------------------------------------------------------------------------------------


def rejections_csv(session: Session, principal: Principal, job_id: int) -> Iterator[str]:
    get_job(session, principal, job_id)
    yield "\ufeffline,column,field,reason\r\n"
    rows = session.execute(
        select(REJECTIONS.c.line, REJECTIONS.c.column, REJECTIONS.c.field, REJECTIONS.c.reason)
        .where(REJECTIONS.c.job_id == job_id)
        .order_by(REJECTIONS.c.line, REJECTIONS.c.id)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for r in rows:
        writer.writerow([r.line, _safe(r.column), r.field or "", _safe(r.reason)])
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _safe(text: str | None) -> str:
    """Spreadsheet-safe: a header a user typed must not run as a formula when the report opens."""
    text = text or ""
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def rejection_list(session: Session, job_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(REJECTIONS.c.line, REJECTIONS.c.column, REJECTIONS.c.field, REJECTIONS.c.reason)
        .where(REJECTIONS.c.job_id == job_id)
        .order_by(REJECTIONS.c.line, REJECTIONS.c.id)
    ).mappings()
    return [dict(r) for r in rows]


# -- revert ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Changed:
    entity: str
    record_id: int
    reason: str


def _conflicts(session: Session, job_id: int, limit: int = 100) -> list[Changed]:
    """Records the job wrote that changed since (or gained orders, interactions or tasks)."""
    out: list[Changed] = []
    for entity, table in (
        ("customer", CUSTOMER.table),
        ("organisation", ORGANISATION.table),
        ("order", ORDER.table),
        ("interaction", INTERACTION.table),
    ):
        ch = CHANGES
        stmt = (
            select(ch.c.record_id, table.c.version)
            .select_from(ch.outerjoin(table, table.c.id == ch.c.record_id))
            .where(
                ch.c.job_id == job_id,
                ch.c.entity == entity,
                ch.c.action != "matched",
                or_(table.c.id.is_(None), table.c.version != ch.c.after_version),
            )
            .limit(limit)
        )
        for rid, version in session.execute(stmt):
            out.append(
                Changed(
                    entity,
                    int(rid),
                    "deleted since the import" if version is None else "changed since the import",
                )
            )
    created = select(CHANGES.c.record_id).where(
        CHANGES.c.job_id == job_id, CHANGES.c.entity == "customer", CHANGES.c.action == "created"
    )
    ours = select(CHANGES.c.record_id).where(CHANGES.c.job_id == job_id, CHANGES.c.entity == "interaction")
    for name, table, own in (
        ("order", ORDER.table, None),
        ("interaction", INTERACTION.table, ours),
        ("task", TASK.table, None),
    ):
        conds = [table.c.customer_id.in_(created)]
        if own is not None:
            conds.append(table.c.id.not_in(own))
        if name == "order":
            conds.append(
                table.c.id.not_in(
                    select(CHANGES.c.record_id).where(CHANGES.c.job_id == job_id, CHANGES.c.entity == "order")
                )
            )
        for (cid,) in session.execute(select(table.c.customer_id).where(*conds).distinct().limit(limit)):
            out.append(Changed("customer", int(cid), f"has {name}s added since the import"))
    return out[:limit]


def revert_job(
    session: Session, principal: Principal, job_id: int, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Undo a whole import in the caller's unit: created records removed, updated ones restored.

    Created customers, organisations and orders are deleted outright (not soft-deleted: they
    should never have been in Rapport, and a soft-deleted copy would keep the personal data);
    each delete and restore is audited per chunk of ids. Refused (409) after the window or when
    any record the job wrote changed since; the problem lists them.
    """
    job = get_job(session, principal, job_id, Action.update)
    now = now or utcnow()
    if job["status"] == "reverted":
        raise Conflict(f"import {job_id} is already reverted")
    if job["status"] in ("queued", "running"):
        raise Conflict(f"import {job_id} is {job['status']}; cancel it and wait for it to stop first")
    end = job["finished_at"] or job["updated_at"]
    if now > end + dt.timedelta(days=revert_days()):
        raise Conflict(
            f"import {job_id} finished more than {revert_days()} days ago; it can no longer be reverted"
        )
    recs = Records(session, principal, _CODEC)
    kinds = {
        r[0] for r in session.execute(select(CHANGES.c.entity).where(CHANGES.c.job_id == job_id).distinct())
    }
    if kinds & {"customer", "organisation"}:
        recs.require(CUSTOMER, Action.delete)
        recs.require(CUSTOMER, Action.update)
    if "order" in kinds:
        recs.require(ORDER, Action.update)
    conflicts = _conflicts(session, job_id)
    if conflicts:
        raise Conflict(
            f"{len(conflicts)}{'+' if len(conflicts) >= 100 else ''} records this import wrote "
            "changed since; "
            "nothing was reverted",
            errors=[
                {"entity": c.entity, "record_id": c.record_id, "reason": c.reason, "type": "changed"}
                for c in conflicts
            ],
        )
    conn = session.connection()
    counts = {"deleted": 0, "restored": 0}
    # Updated customers: previous values back, rows the import added to them removed.
    last = 0
    while True:
        items = session.execute(
            select(
                CHANGES.c.id, CHANGES.c.entity, CHANGES.c.record_id, CHANGES.c.before, CHANGES.c.after_version
            )
            .where(
                CHANGES.c.job_id == job_id,
                CHANGES.c.entity.in_(("customer", "order", "organisation", "interaction")),
                CHANGES.c.action == "updated",
                CHANGES.c.id > last,
            )
            .order_by(CHANGES.c.id)
            .limit(1000)
        ).all()
        if not items:
            break
        last = items[-1].id
        _restore(session, recs, job_id, items)
        counts["restored"] += len(items)
    for entity, table in (
        ("order", ORDER.table),
        ("interaction", INTERACTION.table),
        ("customer", CUSTOMER.table),
        ("organisation", ORGANISATION.table),
    ):
        ids = [
            int(r[0])
            for r in session.execute(
                select(CHANGES.c.record_id)
                .where(CHANGES.c.job_id == job_id, CHANGES.c.entity == entity, CHANGES.c.action == "created")
                .order_by(CHANGES.c.record_id)
            )
        ]
        if entity == "customer":
            # The notes an import wrote on its customers go with them.
            for part in repo.chunks(ids):
                conn.execute(delete(INTERACTION.table).where(INTERACTION.table.c.customer_id.in_(part)))
        for part in repo.chunks(ids):
            if entity == "organisation":
                conn.execute(
                    delete(table).where(
                        table.c.id.in_(part), ~exists().where(CUSTOMER.table.c.organisation_id == table.c.id)
                    )
                )
            else:
                conn.execute(delete(table).where(table.c.id.in_(part)))
            if entity in ("customer", "order", "organisation"):
                recs.audit("import_revert_delete", entity, None, details={"job": job_id, "ids": list(part)})
        counts["deleted"] += len(ids)
    _set(session, job_id, status="reverted", reverted_at=now)
    recs.audit("revert", "import", job_id, details=counts)
    return get_job(session, principal, job_id)


def _restore(session: Session, recs: Records, job_id: int, items: Sequence[Any]) -> None:
    from rapport.demo.chunks import search_terms

    conn = session.connection()
    now = utcnow()
    customer_ids = []
    for item in items:
        before = item.before or {}
        columns = before.get("columns", {})
        entity = item.entity
        table = {
            "order": ORDER.table,
            "organisation": ORGANISATION.table,
            "interaction": INTERACTION.table,
        }.get(entity, CUSTOMER.table)
        values = {c: _from_json(c, v) for c, v in columns.items()}
        conn.execute(
            update(table)
            .where(table.c.id == item.record_id)
            .values(**values, updated_at=now, version=table.c.version + 1)
        )
        if entity != "customer":
            continue
        customer_ids.append(item.record_id)
        if before.get("tags_added"):
            conn.execute(
                delete(repo.TAGS).where(
                    repo.TAGS.c.customer_id == item.record_id, repo.TAGS.c.tag.in_(before["tags_added"])
                )
            )
        if before.get("external_ids_added"):
            conn.execute(
                delete(repo.EXTERNAL).where(repo.EXTERNAL.c.external_id.in_(before["external_ids_added"]))
            )
        if before.get("contacts_added"):
            cp = CONTACT_POINT.table
            conn.execute(delete(cp).where(cp.c.id.in_(before["contacts_added"])))
        if set(columns) & {"display_name", "family_name", "given_name", "name_latin"}:
            names = conn.execute(
                select(
                    CUSTOMER.table.c.display_name,
                    CUSTOMER.table.c.family_name,
                    CUSTOMER.table.c.given_name,
                    CUSTOMER.table.c.name_latin,
                ).where(CUSTOMER.table.c.id == item.record_id)
            ).one()
            conn.execute(delete(TERMS).where(TERMS.c.customer_id == item.record_id))
            repo.insert_many(
                conn, TERMS, [{"term": t, "customer_id": item.record_id} for t in search_terms(*names)]
            )
    if customer_ids:
        recs.audit("import_revert_update", "customer", None, details={"job": job_id, "ids": customer_ids})


def _from_json(column: str, value: Any) -> Any:
    if column == "birth_date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    return value


def purge_expired(session: Session, now: dt.datetime | None = None) -> int:
    """Forget the before-images of imports past the revert window (they can no longer be used)."""
    cutoff = (now or utcnow()) - dt.timedelta(days=revert_days())
    old = select(JOBS.c.id).where(and_(JOBS.c.finished_at.is_not(None), JOBS.c.finished_at < cutoff))
    return int(session.execute(delete(CHANGES).where(CHANGES.c.job_id.in_(old))).rowcount)  # type: ignore[attr-defined]


def _forget_customer(session: Session, customer_id: int) -> str:
    """Erasure hook: the person's before-images and external ids go with them."""
    session.execute(delete(CHANGES).where(CHANGES.c.entity == "customer", CHANGES.c.record_id == customer_id))
    session.execute(delete(repo.EXTERNAL).where(repo.EXTERNAL.c.customer_id == customer_id))
    return "import before-images and external ids deleted"


if _forget_customer not in erasure.ERASURE_HOOKS:
    erasure.ERASURE_HOOKS.append(_forget_customer)

__all__ = [
    "CUSTOMER_COLUMNS",
    "Changed",
    "cancel_job",
    "create_job",
    "interrupt_stale",
    "list_jobs",
    "resume_job",
    "revert_job",
    "run_job",
]
