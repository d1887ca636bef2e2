from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rapport.models import Customer
from rapport.privacy import requests as dsr
from rapport.privacy.requests import RequestKind
from tests.demo.conftest import engines, fresh_url
from tests.factories import Factory
from tests.privacy.helpers import audit_rows

__all__ = ["engines", "fresh_url"]

runner = CliRunner()


def test_requests_overdue_lists_late_cases_exits_1_and_notifies_once(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine]
) -> None:
    from rapport.cli.main import app as cli

    url = fresh_url()
    engine = engines(url)
    with Session(engine) as session:
        cid = Factory(session.connection()).customer()
        late = dsr.open_request(
            session,
            cid,
            RequestKind.delete,
            channel="email",
            details=None,
            actor=None,
            now=dt.datetime.now(dt.UTC) - dt.timedelta(days=20),
        )
        dsr.open_request(session, cid, RequestKind.access, channel="email", details=None, actor=None)
        session.commit()
        late_id = late.id
    listed = runner.invoke(cli, ["privacy", "requests", "--json", "--url", url])
    assert listed.exit_code == 1  # something is overdue
    data = json.loads(listed.stdout)
    assert len(data["requests"]) == 2 and data["overdue"] == [late_id]
    first = runner.invoke(cli, ["privacy", "requests", "--overdue", "--notify", "--json", "--url", url])
    assert json.loads(first.stdout)["notified"] == [late_id]
    second = runner.invoke(cli, ["privacy", "requests", "--overdue", "--notify", "--json", "--url", url])
    assert json.loads(second.stdout)["notified"] == []
    table = runner.invoke(cli, ["privacy", "requests", "--overdue", "--url", url])
    assert "OVERDUE" in table.stdout and "delete" in table.stdout
    with engine.connect() as conn:
        assert [e["record_id"] for e in audit_rows(conn, "overdue")] == [str(late_id)]


def test_export_erase_import_from_the_command_line(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], tmp_path: Path
) -> None:
    from rapport.cli.main import app as cli

    url = fresh_url()
    engine = engines(url)
    with engine.begin() as conn:
        f = Factory(conn)
        cid = f.customer(display_name="命令行客户")
        f.contact(cid, "email", "cli.person@example.org")
    for fmt, name in (([], "p.json"), (["--csv"], "p.zip")):
        out = tmp_path / name
        r = runner.invoke(cli, ["privacy", "export", str(cid), *fmt, "-o", str(out), "--url", url])
        assert r.exit_code == 0, r.output
        assert out.stat().st_mode & 0o777 == 0o600
    erased = runner.invoke(cli, ["privacy", "erase", str(cid), "--reason", "dsr:7", "--url", url])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.stdout)["counts"]["contact_points"] == 1
    ids = []
    for name in ("p.json", "p.zip"):
        r = runner.invoke(cli, ["privacy", "import", str(tmp_path / name), "--url", url])
        assert r.exit_code == 0, r.output
        ids.append(int(r.stdout.split()[-1]))
    with engine.connect() as conn:
        names = conn.execute(select(Customer.display_name).order_by(Customer.id)).scalars().all()
        assert names == ["[erased]", "命令行客户", "命令行客户"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = runner.invoke(cli, ["privacy", "import", str(bad), "--url", url])
    assert r.exit_code == 1 and "format" in r.output
    verify = runner.invoke(cli, ["audit", "verify", "--url", url])
    assert verify.exit_code == 0, verify.output
