"""Import-wizard uploads never started as a job are deleted after RAPPORT_IMPORT_UPLOAD_HOURS:
by ``rapport import prune`` and whenever a job is created; job files and other files stay."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rapport.access.principal import SYSTEM
from rapport.cli.main import app as cli
from rapport.config import Settings
from rapport.db import Database
from rapport.ingest import jobs
from rapport.models import ImportJob
from rapport.models.base import utcnow
from tests.factories import Factory
from tests.web.test_workspace_pages import login

CSV = "客户编号,姓名\nK1,王小明\n"


def _draft(folder: Path, uid: int, hours_old: float) -> Path:
    path = folder / f"web-{uid}-{secrets.token_hex(8)}.csv"
    path.write_text(CSV, encoding="utf-8")
    at = (utcnow() - dt.timedelta(hours=hours_old)).timestamp()
    os.utime(path, (at, at))
    return path


def _age(path: Path, hours: float) -> None:
    at = (utcnow() - dt.timedelta(hours=hours)).timestamp()
    os.utime(path, (at, at))


def _job(session: Session, path: Path) -> int:
    job = jobs.create_job(
        session, SYSTEM, path, kind="customers", mode="create", match_keys=["external_id"], mapping=None
    )
    return int(job["id"])


def test_prune_deletes_only_old_drafts_no_job_uses(tmp_path: Path, db: Session) -> None:
    folder = tmp_path / "imports"
    folder.mkdir()
    abandoned = _draft(folder, 7, hours_old=30)
    started = _draft(folder, 7, hours_old=30)
    fresh = _draft(folder, 8, hours_old=2)
    api_file = folder / f"{secrets.token_hex(8)}.csv"  # an API upload: not the wizard's
    api_file.write_text(CSV, encoding="utf-8")
    _age(api_file, 30)
    _job(db, started)

    removed = jobs.prune_uploads(db, folder, max_age=dt.timedelta(hours=24))

    assert removed == [abandoned.name]
    assert sorted(p.name for p in folder.iterdir()) == sorted([started.name, fresh.name, api_file.name])
    # A shorter age reaches the fresh one too; the job's file is never touched.
    assert jobs.prune_uploads(db, folder, max_age=dt.timedelta(hours=1)) == [fresh.name]
    assert jobs.prune_uploads(db, tmp_path / "missing", max_age=dt.timedelta(hours=1)) == []


def test_cli_prune_deletes_abandoned_uploads(tmp_path: Path, committed_db: Database) -> None:
    url = committed_db.bind.engine.url.render_as_string(hide_password=False)
    folder = tmp_path / "imports"
    folder.mkdir()
    abandoned, started, fresh = (_draft(folder, 3, h) for h in (50, 50, 1))
    with committed_db.unit(write=True) as session:
        _job(session, started)
    runner = CliRunner()
    out = runner.invoke(
        cli, ["import", "prune", "--url", url, "--uploads", str(folder), "--upload-hours", "48"]
    )
    assert out.exit_code == 0, out.output
    assert "1 abandoned uploads deleted" in out.output
    assert (abandoned.exists(), started.exists(), fresh.exists()) == (False, True, True)
    out = runner.invoke(
        cli, ["import", "prune", "--url", url, "--uploads", str(folder), "--upload-hours", "48"]
    )
    assert "0 abandoned uploads deleted" in out.output


@pytest.fixture
def wizard(app: FastAPI) -> Iterator[None]:
    app.state.throttle.reset()
    yield
    app.state.throttle.reset()


def test_starting_a_job_in_the_wizard_deletes_other_abandoned_uploads(
    client: TestClient, factory: Factory, settings: Settings, db: Session, wizard: None
) -> None:
    factory.user("crm_specialist", factory.team(), username="prune.wizard")
    csrf = login(client, factory, "prune.wizard")
    folder = jobs.upload_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    left_behind = _draft(folder, 999, hours_old=settings.import_upload_hours + 1)
    recent = _draft(folder, 999, hours_old=settings.import_upload_hours - 1)

    r = client.post(
        "/imports/new",
        data={"csrf_token": csrf, "kind": "customers"},
        files={"file": ("客户.csv", CSV.encode("utf-8"), "text/csv")},
    )
    assert r.status_code == 200, r.text
    draft = re.search(r'name="draft" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    # This user's own upload is old by now too, but it becomes the job's file: it stays.
    _age(folder / draft, settings.import_upload_hours + 5)
    data = {
        "csrf_token": csrf,
        "draft": draft,
        "kind": "customers",
        "m0": "external_id",
        "m1": "display_name",
    }
    r = client.post("/imports/start", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text

    assert not left_behind.exists()
    assert recent.exists() and (folder / draft).exists()
    job_path = db.execute(select(ImportJob.file_path).order_by(ImportJob.id.desc())).scalars().first()
    assert job_path == str((folder / draft).resolve())
    recent.unlink()


def test_creating_a_job_through_the_api_deletes_abandoned_uploads(
    client: TestClient, factory: Factory, settings: Settings
) -> None:
    folder = jobs.upload_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    left_behind = _draft(folder, 998, hours_old=settings.import_upload_hours + 1)
    auth = factory.auth(factory.user("crm_specialist", team_id=factory.team()))
    r = client.post("/api/v1/imports", headers=auth, json={"rows": [{"客户编号": "K9", "姓名": "李雷"}]})
    assert r.status_code == 202, r.text
    assert not left_behind.exists()
