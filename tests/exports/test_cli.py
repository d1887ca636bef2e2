from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from rapport.cli.main import app
from rapport.ingest.vcard import read_vcards
from rapport.models import AuditEvent, Customer, Team, User

runner = CliRunner()


def _run(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"RAPPORT_DATABASE_URL": url, "RAPPORT_DEMO_PASSWORD": None})
    return result.exit_code, result.output


def test_cli_export_as_a_user_writes_their_scope_and_is_audited(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], tmp_path: Path
) -> None:
    url = fresh_url()
    engine = engines(url)
    code, out = _run(url, "demo", "--customers", "40", "--seed", "3")
    assert code == 0, out
    target = tmp_path / "east.csv"
    code, out = _run(
        url, "export", "customers", "--format", "csv", "-o", str(target), "--as", "lead.east", "--bom"
    )
    assert code == 0, out
    with engine.connect() as conn:
        lead_id, team_id = conn.execute(
            select(User.id, User.team_id).where(User.username == "lead.east")
        ).one()
        expected = conn.execute(
            select(Customer.id)
            .where(Customer.team_id == team_id, Customer.deleted_at.is_(None))
            .order_by(Customer.id)
        ).scalars()
        expected_ids = list(expected)
        events = conn.execute(
            select(AuditEvent.details).where(AuditEvent.action == "export", AuditEvent.actor_id == lead_id)
        ).scalars()
        audited = [i for details in events for i in details["ids"]]
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))]
    assert ids and set(ids) <= set(expected_ids)  # restricted customers, if any, are left out
    assert audited == ids
    assert f"{len(ids)} customers written to {target} (csv, as lead.east)" in out


def test_cli_export_vcard_as_system_and_filters(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], tmp_path: Path
) -> None:
    url = fresh_url()
    engine = engines(url)
    assert _run(url, "demo", "--customers", "30", "--seed", "4")[0] == 0
    with engine.connect() as conn:
        team = conn.execute(select(Team.name).order_by(Team.id)).scalars().first()
        in_team = conn.execute(
            select(func.count())
            .select_from(Customer)
            .where(Customer.team_id == select(Team.id).where(Team.name == team).scalar_subquery())
        ).scalar_one()
    target = tmp_path / "team.vcf"
    code, out = _run(url, "export", "customers", "--format", "vcard", "-o", str(target), "--team", str(team))
    assert code == 0, out
    assert "as system" in out
    assert 0 < len(list(read_vcards(target))) <= in_team
    code, out = _run(url, "export", "customers", "--format", "pdf", "-o", str(target))
    assert code == 2 and "unknown format 'pdf'" in out
    code, out = _run(url, "export", "customers", "-o", str(target), "--as", "nobody")
    assert code == 1 and "no user 'nobody'" in out
    code, out = _run(url, "export", "customers", "-o", str(target), "--as", "sales.east")
    assert code == 1 and "your role may not export customer records" in out
