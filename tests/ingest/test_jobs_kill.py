"""kill -9 in the middle of an import: whole batches only, checkpoint exact, resume completes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rapport.db import Database
from rapport.ingest import repository as repo
from rapport.models import ContactPoint, Customer, CustomerExternalId, CustomerSearchTerm, ImportChange
from rapport.models.base import table_of
from rapport.security.keyring import open_rows
from tests.ingest.helpers import alive, children_running

ROWS = 12_000
BATCH = 400


def _file(tmp_path: Path) -> tuple[Path, dict[str, tuple[str, str]]]:
    expected: dict[str, tuple[str, str]] = {}
    lines = ["客户编号,姓名,手机"]
    for i in range(ROWS):
        phone = "123" if i % 97 == 5 else f"139{i:08d}"
        lines.append(f"K{i:06d},客户{i},{phone}")
        if phone != "123":
            expected[f"K{i:06d}"] = (f"客户{i}", f"+86{phone}")
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, expected


def _cli(url: str, tmp_path: Path, *args: str, prepare: str = "never") -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "RAPPORT_DATABASE_URL": url,
        "RAPPORT_DATA_DIR": str(tmp_path),
        "RAPPORT_IMPORT_PREPARE_PROCESS": prepare,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "rapport.cli.main", "import", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _count(db: Database, model: object) -> int:
    with db.unit(write=False) as s:
        return int(s.execute(select(func.count()).select_from(table_of(model))).scalar_one())  # type: ignore[arg-type]


@pytest.mark.parametrize("prepare", ["never", "always"])
def test_sigkill_leaves_whole_batches_and_resume_finishes_like_an_uninterrupted_import(
    prepare: str, tmp_path: Path, committed_db: Database
) -> None:
    db = committed_db
    url = db.bind.engine.url.render_as_string(hide_password=False)
    path, expected = _file(tmp_path)
    worker = _cli(
        url,
        tmp_path,
        *("customers", str(path), "--json", "--batch-size", str(BATCH), "--match", "external_id"),
        prepare=prepare,
    )
    job = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with db.unit(write=False) as s:
            job = s.execute(select(repo.JOBS)).mappings().first()
        if job is not None and job["batches_done"] >= 3:
            break
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        time.sleep(0.02)
    helpers = children_running("rapport.ingest.workers", worker.pid)
    assert len(helpers) == (1 if prepare == "always" else 0)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert worker.returncode == -signal.SIGKILL
    # The preparing process dies with the job's process: nothing keeps reading the file.
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in helpers)

    with db.unit(write=False) as s:
        job = dict(s.execute(select(repo.JOBS)).mappings().one())
        rejected = s.execute(select(func.count()).select_from(repo.REJECTIONS)).scalar_one()
    assert job["status"] == "running"
    assert job["rows_done"] % BATCH == 0 and 0 < job["rows_done"] < ROWS
    assert job["checkpoint_line"] == job["rows_done"] + 1  # header is line 1, one line per row
    good_done = sum(1 for i in range(job["rows_done"]) if i % 97 != 5)
    assert job["created_count"] == good_done == _count(db, Customer)
    assert _count(db, ContactPoint) == _count(db, CustomerExternalId) == good_done
    assert _count(db, ImportChange) == good_done
    assert rejected == job["rejected_count"] == job["rows_done"] - good_done
    with db.unit(write=False) as s:
        terms = table_of(CustomerSearchTerm)
        assert s.execute(select(func.count(func.distinct(terms.c.customer_id)))).scalar_one() == good_done

    resumed = _cli(url, tmp_path, "resume", str(job["id"]), "--json", prepare=prepare)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["status"], summary["rows"], summary["created"]) == ("done", ROWS, len(expected))
    assert summary["rejected"] == ROWS - len(expected)

    cp, ext, c = table_of(ContactPoint), table_of(CustomerExternalId), table_of(Customer)
    with db.unit(write=False) as s:
        rows = [
            dict(r)
            for r in s.execute(
                select(cp.c.id, cp.c.value, ext.c.external_id, c.c.display_name, c.c.version)
                .join(c, c.c.id == cp.c.customer_id)
                .join(ext, ext.c.customer_id == c.c.id)
            ).mappings()
        ]
        open_rows(s, cp, rows)
    assert {r["external_id"]: (r["display_name"], r["value"]) for r in rows} == expected
    assert {r["version"] for r in rows} == {1}
    assert len(rows) == len(expected)
