"""Jobs whose runner is gone: marked interrupted (dead pid, old heartbeat, server start-up), shown
by the API, the workspace and the CLI, and resumed from their checkpoint."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select, update
from typer.testing import CliRunner

from rapport.access.policy import Role
from rapport.access.principal import SYSTEM, Principal
from rapport.app import create_app
from rapport.cli.main import app as cli
from rapport.config import Settings
from rapport.db import Database
from rapport.errors import Conflict
from rapport.ingest import jobs
from rapport.ingest import repository as repo
from rapport.models import Customer
from rapport.models.base import table_of, utcnow
from tests.factories import Factory
from tests.ingest.helpers import queue_upsert
from tests.web.test_workspace_pages import login

CSV = "客户编号,姓名,手机\n" + "".join(f"K{i},客户{i},139{i:08d}\n" for i in range(6))


def _job(tmp_path: Path, database: Database, principal: Principal) -> int:
    path = tmp_path / "k.csv"
    path.write_text(CSV, encoding="utf-8")
    return queue_upsert(database, principal, path, batch_size=2)


def _principal(factory: Factory) -> Principal:
    team = factory.team()
    uid = factory.user("crm_specialist", team_id=team)
    return Principal(user_id=uid, username=f"u{uid}", role=Role.crm_specialist, team_id=team)


def _row(connection: Connection, job_id: int) -> dict[str, Any]:
    return dict(connection.execute(select(repo.JOBS).where(repo.JOBS.c.id == job_id)).mappings().one())


def _dead_runner() -> str:
    """A runner id of this host whose process has exited."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host, boot, _, _ = jobs.runner_id().rsplit("/", 3)
    return f"{host}/{boot}/{int(child.stdout)}/0badc0de"


def _customers(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(table_of(Customer))).scalar_one())


def test_a_dead_runner_is_interrupted_and_resume_finishes_from_the_checkpoint(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    job_id = _job(tmp_path, database, _principal(factory))
    first = jobs.run_job(database, job_id, max_batches=1)
    assert (first["status"], first["rows"], first["checkpoint_line"]) == ("running", 2, 3)
    row = _row(connection, job_id)
    assert row["runner_id"] is None  # max_batches released it
    assert row["heartbeat_at"] is not None
    # A run of this (living) process holds it: nothing to do, and resume is refused.
    ours = f"{jobs.runner_id()}:0a0b0c"
    connection.execute(update(repo.JOBS).where(repo.JOBS.c.id == job_id).values(runner_id=ours))
    assert jobs.runner_alive(ours) is True
    with pytest.raises(Conflict, match="is running"):
        jobs.run_job(database, job_id)  # another thread of this process: refused too
    # Same host, boot and pid but another start token: a restarted process that got the pid.
    host, boot, pid, _ = jobs.runner_id().rsplit("/", 3)
    assert jobs.runner_alive(f"{host}/{boot}/{pid}/0badc0de:0a0b0c") is False
    assert jobs.runner_alive(f"{host}/another-boot/{pid}/0badc0de:0a0b0c") is False
    assert jobs.runner_alive("elsewhere/boot/1/x:y") is None
    assert jobs.interrupt_stale(database) == []
    with database.unit(write=True) as session, pytest.raises(Conflict, match="is running"):
        jobs.resume_job(session, SYSTEM, job_id)

    connection.execute(update(repo.JOBS).where(repo.JOBS.c.id == job_id).values(runner_id=_dead_runner()))
    assert jobs.interrupt_stale(database) == [job_id]
    row = _row(connection, job_id)
    assert row["status"] == "interrupted"
    assert row["error"] == "interrupted: the process running this import stopped; resume continues it"
    assert row["finished_at"] is not None
    assert jobs.interrupt_stale(database) == []  # already handled

    with database.unit(write=True) as session:
        assert jobs.resume_job(session, SYSTEM, job_id)["status"] == "queued"
    done = jobs.run_job(database, job_id)
    assert done == {
        "job_id": job_id,
        "status": "done",
        "rows": 6,
        "created": 6,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "checkpoint_line": 7,
    }
    assert _customers(connection) == 6
    row = _row(connection, job_id)
    assert (row["error"], row["batches_done"]) == (None, 3)


def test_an_old_heartbeat_on_another_host_is_interrupted_a_fresh_one_is_not(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    p = _principal(factory)
    old, fresh = _job(tmp_path, database, p), _job(tmp_path, database, p)
    now = utcnow()
    for job_id, beat in ((old, now - dt.timedelta(minutes=20)), (fresh, now - dt.timedelta(minutes=2))):
        connection.execute(
            update(repo.JOBS)
            .where(repo.JOBS.c.id == job_id)
            .values(status="running", runner_id="elsewhere/boot/42/abcd", heartbeat_at=beat, updated_at=beat)
        )
    assert jobs.interrupt_stale(database, stale_seconds=600) == [old]
    assert _row(connection, old)["status"] == "interrupted"
    assert _row(connection, old)["error"].startswith("interrupted: no progress since ")
    assert _row(connection, fresh)["status"] == "running"
    # A job whose process is gone with a cancel pending simply ends cancelled.
    connection.execute(update(repo.JOBS).where(repo.JOBS.c.id == fresh).values(cancel_requested=True))
    assert jobs.interrupt_stale(database, stale_seconds=60) == [fresh]
    assert (_row(connection, fresh)["status"], _row(connection, fresh)["error"]) == ("cancelled", None)


def test_a_runner_that_lost_its_job_stops_without_writing(
    tmp_path: Path, database: Database, factory: Factory, connection: Connection
) -> None:
    job_id = _job(tmp_path, database, _principal(factory))

    def taken_over(_state: dict[str, Any]) -> None:
        # After the first batch another process takes the job over (a resume elsewhere).
        connection.execute(
            update(repo.JOBS).where(repo.JOBS.c.id == job_id).values(runner_id="elsewhere/b/1/x")
        )

    out = jobs.run_job(database, job_id, progress=taken_over)
    assert (out["status"], out["rows"]) == ("running", 2)
    assert _customers(connection) == 2
    # Its runner is alive (fresh heartbeat): starting it again here is refused.
    with pytest.raises(Conflict, match="is running"):
        jobs.run_job(database, job_id)
    assert _row(connection, job_id)["rows_done"] == 2


def test_server_start_marks_the_job_interrupted_and_the_api_resumes_it(
    tmp_path: Path, settings: Settings, database: Database, factory: Factory, connection: Connection
) -> None:
    team = factory.team()
    uid = factory.user("crm_specialist", team_id=team)
    p = Principal(user_id=uid, username=f"u{uid}", role=Role.crm_specialist, team_id=team)
    job_id = _job(tmp_path, database, p)
    jobs.run_job(database, job_id, max_batches=1)
    connection.execute(update(repo.JOBS).where(repo.JOBS.c.id == job_id).values(runner_id=_dead_runner()))
    app: FastAPI = create_app(settings, database)
    with TestClient(app, raise_server_exceptions=False) as client:  # lifespan: the start-up sweep
        auth = factory.auth(uid)
        state = client.get(f"/api/v1/imports/{job_id}", headers=auth).json()
        assert (state["status"], state["rows_done"]) == ("interrupted", 2)
        assert "the process running this import stopped" in state["error"]
        r = client.post(f"/api/v1/imports/{job_id}/resume", headers=auth)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "queued"
        state = client.get(f"/api/v1/imports/{job_id}", headers=auth).json()
        assert (state["status"], state["rows_done"], state["created_count"]) == ("done", 6, 6)
        again = client.post(f"/api/v1/imports/{job_id}/resume", headers=auth)
        assert again.status_code == 409
    assert _customers(connection) == 6


def test_workspace_shows_interrupted_and_resumes(
    tmp_path: Path, client: TestClient, database: Database, factory: Factory, connection: Connection
) -> None:
    team = factory.team()
    uid = factory.user("crm_specialist", team, username="imp.resume")
    p = Principal(user_id=uid, username="imp.resume", role=Role.crm_specialist, team_id=team)
    job_id = _job(tmp_path, database, p)
    jobs.run_job(database, job_id, max_batches=1)
    connection.execute(update(repo.JOBS).where(repo.JOBS.c.id == job_id).values(runner_id=_dead_runner()))
    jobs.interrupt_stale(database)
    csrf = login(client, factory, "imp.resume")
    page = client.get(f"/imports/{job_id}")
    assert 'data-status="interrupted"' in page.text
    assert 'data-testid="import-status">Interrupted<' in page.text
    assert 'data-testid="resume-import"' in page.text and 'hx-trigger="every 1s"' not in page.text
    r = client.post(f"/imports/{job_id}/resume", headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 200 and 'data-status="queued"' in r.text
    done = client.get(f"/imports/{job_id}/progress", headers={"HX-Request": "true"})
    assert 'data-status="done"' in done.text and 'data-testid="import-created">6<' in done.text


def test_cli_status_shows_interrupted_and_resume_continues(tmp_path: Path, committed_db: Database) -> None:
    url = committed_db.bind.engine.url.render_as_string(hide_password=False)
    job_id = _job(tmp_path, committed_db, SYSTEM)
    jobs.run_job(committed_db, job_id, max_batches=2)
    with committed_db.unit(write=True) as session:
        session.execute(update(repo.JOBS).where(repo.JOBS.c.id == job_id).values(runner_id=_dead_runner()))
    runner = CliRunner()
    shown = runner.invoke(cli, ["import", "status", str(job_id), "--url", url])
    assert shown.exit_code == 0, shown.output
    assert f"import {job_id} interrupted: 4 created" in shown.output
    assert f"rapport import resume {job_id}" in shown.output
    resumed = runner.invoke(cli, ["import", "resume", str(job_id), "--json", "--url", url])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert (summary["status"], summary["rows"], summary["created"]) == ("done", 6, 6)
    again = runner.invoke(cli, ["import", "resume", str(job_id), "--url", url])
    assert again.exit_code == 1 and "only interrupted or failed imports can be resumed" in again.output
