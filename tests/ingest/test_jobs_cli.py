"""`rapport import ...` from the command line: summary JSON, dry run, status, rejections, revert."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rapport.cli.main import app
from rapport.db import Database

runner = CliRunner()
CSV = "客户编号,姓名,手机\nC1,王小明,13800138000\nC2,李雷,12345\n"


def test_cli_import_status_rejections_and_revert(tmp_path: Path, committed_db: Database) -> None:
    url = committed_db.bind.engine.url.render_as_string(hide_password=False)
    path = tmp_path / "客户.csv"
    path.write_bytes(CSV.encode("gbk"))
    mapping = tmp_path / "mapping.json"
    proposed = runner.invoke(app, ["import", "mapping", str(path), "-o", str(mapping)])
    assert proposed.exit_code == 0, proposed.output
    assert json.loads(mapping.read_text()) == {
        "客户编号": "external_id",
        "姓名": "display_name",
        "手机": "phone",
    }

    preview = runner.invoke(app, ["import", "customers", str(path), "--dry-run", "--json", "--url", url])
    assert preview.exit_code == 0, preview.output
    assert [r["outcome"] for r in json.loads(preview.stdout)["rows"]] == ["create", "reject"]

    result = runner.invoke(
        app,
        [
            "import",
            "customers",
            str(path),
            "--mapping",
            str(mapping),
            "--json",
            "--url",
            url,
            "--mode",
            "upsert",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("status", "created", "updated", "rejected")} == {
        "status": "done",
        "created": 1,
        "updated": 0,
        "rejected": 1,
    }
    job = str(summary["job_id"])
    status = json.loads(runner.invoke(app, ["import", "status", job, "--json", "--url", url]).stdout)
    assert (status["mapping"], status["checkpoint_line"]) == (json.loads(mapping.read_text()), 3)

    out = tmp_path / "rejected.csv"
    assert runner.invoke(app, ["import", "rejections", job, "-o", str(out), "--url", url]).exit_code == 0
    assert out.read_text(encoding="utf-8-sig").splitlines() == [
        "line,column,field,reason",
        "3,手机,phone,not a valid phone number for its region",
    ]
    reverted = runner.invoke(app, ["import", "revert", job, "--json", "--url", url])
    assert reverted.exit_code == 0, reverted.output
    assert json.loads(reverted.stdout)["status"] == "reverted"
    again = runner.invoke(app, ["import", "revert", job, "--url", url])
    assert again.exit_code == 1
    assert "already reverted" in again.output

    bad = runner.invoke(app, ["import", "customers", str(path), "--mode", "merge", "--url", url])
    assert bad.exit_code == 2
