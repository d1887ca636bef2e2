from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import Engine, func, select, text
from typer.testing import CliRunner

from rapport.cli import serve as serve_module
from rapport.cli.common import head_revision
from rapport.cli.main import app
from rapport.config import Settings
from rapport.demo.generator import DEFAULT_DEMO_PASSWORD
from rapport.models import AuditEvent, Customer, User
from rapport.models.base import table_of
from tests.demo.conftest import api_client

# The newest migration; branches each add theirs, so tests name it through Alembic.
HEAD = head_revision()

MakeUrl = Callable[[], str]
MakeEngine = Callable[[str], Engine]
STRONG = "Quiet-Meadow-4471"

runner = CliRunner()
HEAD = head_revision()  # the newest migration; branches add their own


def rapport(url: str, *args: str, input: str | None = None, **env: str | None) -> Result:
    environ: dict[str, str | None] = {
        "RAPPORT_DATABASE_URL": url,
        "RAPPORT_DEMO_PASSWORD": None,
        **env,
    }
    return runner.invoke(app, list(args), env=environ, input=input)


def _count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table_of(model))).scalar_one())


def _login(client: Any, username: str, password: str) -> str:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _drop_audit_guard(engine: Engine, verb: str) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text(f"DROP TRIGGER audit_event_no_{verb}"))
        else:
            conn.execute(text("DROP TRIGGER audit_event_append_only ON audit_event"))


# -- demo ----------------------------------------------------------------------------------------


def test_demo_loads_prints_logins_and_if_empty_is_a_no_op(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    url = fresh_url()
    engine = engines(url)
    first = rapport(url, "demo", "--customers", "40", "--seed", "5")
    assert first.exit_code == 0, first.output
    assert "customers: 40/40" in first.output  # the plain progress lines (no TTY here)
    assert f"password for new demo users (built-in default): {DEFAULT_DEMO_PASSWORD}" in first.output
    assert "log in: http://127.0.0.1:8000  (API docs: http://127.0.0.1:8000/api/v1/docs)" in first.output
    assert (
        "curl -s -X POST http://127.0.0.1:8000/api/v1/auth/token "
        f"-d username=sales.east -d 'password={DEFAULT_DEMO_PASSWORD}'"
    ) in first.output
    assert "sales.east" in first.output
    assert "rows/s" in first.output
    assert _count(engine, Customer) == 40

    again = rapport(url, "demo", "--customers", "40", "--if-empty")
    assert again.exit_code == 0, again.output
    assert "already has 40 customers; --if-empty: nothing loaded" in again.output
    assert _count(engine, Customer) == 40
    assert _count(engine, AuditEvent) == 1  # only the first load's summary event


def test_demo_password_comes_from_the_environment(
    fresh_url: MakeUrl, engines: MakeEngine, settings: Settings
) -> None:
    url = fresh_url()
    result = rapport(url, "demo", "--customers", "5", RAPPORT_DEMO_PASSWORD="Copper-Finch-Delta-93")
    assert result.exit_code == 0, result.output
    assert "password for new demo users (RAPPORT_DEMO_PASSWORD): Copper-Finch-Delta-93" in result.output
    with api_client(settings, engines(url)) as client:
        _login(client, "analyst.north", "Copper-Finch-Delta-93")


def test_demo_refuses_a_weak_environment_password(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    url = fresh_url()
    result = rapport(url, "demo", "--customers", "5", RAPPORT_DEMO_PASSWORD="password")
    assert result.exit_code == 1
    assert "error: demo password must be at least 12 characters long; is too common" in result.output
    assert "Traceback" not in result.output
    assert _count(engine := engines(url), User) == 0
    assert _count(engine, Customer) == 0


def test_demo_migrates_an_empty_sqlite_file_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'rapport.db'}"
    result = rapport(url, "demo", "--customers", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "customers: " not in result.output
    assert rapport(url, "db", "current").output.strip() == f"{HEAD} (head)"


# -- users ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "must be at least 12 characters long"),
        ("password1234", "is too common"),
        ("abcdefghijklm", "is a keyboard or alphabet sequence"),
        ("alice.wonder-Keeps-77", "must not contain the username"),
    ],
)
def test_user_create_refuses_a_weak_password_with_the_reason(
    fresh_url: MakeUrl, engines: MakeEngine, password: str, reason: str
) -> None:
    url = fresh_url()
    result = rapport(url, "user", "create", "alice.wonder", "--role", "sales_rep", "--password", password)
    assert result.exit_code == 1
    assert f"error: password refused: {reason}" in result.output
    assert _count(engines(url), User) == 0


def test_user_create_via_hidden_prompt_then_log_in(
    fresh_url: MakeUrl, engines: MakeEngine, settings: Settings
) -> None:
    url = fresh_url()
    assert rapport(url, "team", "create", "华南 South").exit_code == 0
    result = rapport(
        url,
        "user",
        "create",
        "li.na",
        "--role",
        "service_rep",
        "--team",
        "华南 South",
        "--display-name",
        "李娜",
        "--email",
        "Li.Na@Example.com",
        input=f"{STRONG}\n{STRONG}\n",
    )
    assert result.exit_code == 0, result.output
    assert STRONG not in result.output  # hidden input is not echoed
    assert "created user li.na (id 1, role service_rep)" in result.output
    engine = engines(url)
    with engine.connect() as conn:
        row = conn.execute(
            select(User.email, User.display_name, User.team_id).where(User.username == "li.na")
        ).one()
        event = conn.execute(
            select(AuditEvent.action, AuditEvent.resource, AuditEvent.fields).order_by(AuditEvent.seq.desc())
        ).first()
    assert tuple(row) == ("li.na@example.com", "李娜", 1)
    assert event is not None
    assert (event.action, event.resource) == ("create", "user")
    assert event.fields == ["display_name", "email", "password_hash", "role", "team_id", "username"]
    with api_client(Settings(secret_key="x" * 40), engine) as client:
        _login(client, "li.na", STRONG)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Name", "--role", "sales_rep"], "error: username: String should match pattern"),
        (
            ["bob", "--role", "sales_rep", "--team", "nowhere"],
            "error: team 'nowhere' not found (teams: none yet",
        ),
        (
            ["bob", "--role", "sales_rep", "--email", "not-an-email"],
            "error: email: Value error, not a valid email",
        ),
    ],
)
def test_user_create_explains_bad_input(
    fresh_url: MakeUrl, engines: MakeEngine, args: list[str], message: str
) -> None:
    url = fresh_url()
    result = rapport(url, "user", "create", *args, "--password", STRONG)
    assert result.exit_code == 1
    assert message in result.output
    assert _count(engines(url), User) == 0


def test_user_create_refuses_a_taken_username(fresh_url: MakeUrl) -> None:
    url = fresh_url()
    assert rapport(url, "user", "create", "bob", "--role", "admin", "--password", STRONG).exit_code == 0
    again = rapport(url, "user", "create", "bob", "--role", "admin", "--password", STRONG)
    assert again.exit_code == 1
    assert "error: username 'bob' is taken" in again.output


def test_unknown_role_is_a_usage_error(fresh_url: MakeUrl) -> None:
    result = rapport(fresh_url(), "user", "create", "bob", "--role", "wizard", "--password", STRONG)
    assert result.exit_code == 2
    assert "'wizard' is not one of" in result.output


def test_user_disable_revokes_tokens_and_enable_allows_login_again(
    fresh_url: MakeUrl, engines: MakeEngine, settings: Settings
) -> None:
    url = fresh_url()
    assert rapport(url, "user", "create", "carol", "--role", "sales_rep", "--password", STRONG).exit_code == 0
    with api_client(settings, engines(url)) as client:
        token = _login(client, "carol", STRONG)
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/auth/me", headers=auth).status_code == 200

        disabled = rapport(url, "user", "disable", "carol")
        assert disabled.exit_code == 0, disabled.output
        assert "disabled carol; their sessions and API keys are revoked" in disabled.output
        assert client.get("/api/v1/auth/me", headers=auth).status_code == 401
        refused = client.post("/api/v1/auth/token", data={"username": "carol", "password": STRONG})
        assert refused.status_code == 401

        enabled = rapport(url, "user", "enable", "carol")
        assert enabled.exit_code == 0
        assert client.get("/api/v1/auth/me", headers=auth).status_code == 401  # revoked stays revoked
        _login(client, "carol", STRONG)


def test_user_disable_unknown_user(fresh_url: MakeUrl) -> None:
    result = rapport(fresh_url(), "user", "disable", "ghost")
    assert result.exit_code == 1
    assert "error: user 'ghost' not found" in result.output


def test_user_and_team_list(fresh_url: MakeUrl) -> None:
    url = fresh_url()
    assert rapport(url, "team", "create", "华东 East").exit_code == 0
    assert rapport(url, "team", "create", "华东 East").output.strip() == "team exists: 华东 East (id 1)"
    assert (
        rapport(
            url, "user", "create", "dave", "--role", "team_lead", "--team", "1", "--password", STRONG
        ).exit_code
        == 0
    )
    assert rapport(url, "user", "disable", "dave").exit_code == 0
    users = rapport(url, "user", "list")
    assert users.exit_code == 0
    assert users.output.splitlines() == [
        "id\tusername\tname\trole\tteam\tactive\tlast login",
        "1\tdave\tdave\tteam_lead\t华东 East\tno\t-",
        "1 user(s)",
    ]
    teams = rapport(url, "team", "list")
    assert teams.output.splitlines() == ["id\tname\tusers", "1\t华东 East\t1"]


def test_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = rapport(url, "user", "list")
    assert result.exit_code == 1
    assert (
        f"error: database schema is at nothing, this version needs {HEAD}; run `rapport db upgrade` first"
        in (result.output)
    )


def test_unreachable_database_is_one_line_not_a_traceback() -> None:
    result = rapport("postgresql+psycopg://nobody@127.0.0.1:1/none", "user", "list")
    assert result.exit_code == 1
    assert result.output.startswith("error: database error: ")
    assert "Traceback" not in result.output


# -- audit ---------------------------------------------------------------------------------------


def _chain_of_three(url: str) -> None:
    for name in ("erin", "frank", "grace"):
        assert (
            rapport(url, "user", "create", name, "--role", "sales_rep", "--password", STRONG).exit_code == 0
        )


def _last_hash(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(AuditEvent.hash).order_by(AuditEvent.seq.desc())).scalars().first())


def test_audit_verify_passes_then_names_the_tampered_position(
    fresh_url: MakeUrl, engines: MakeEngine
) -> None:
    url = fresh_url()
    engine = engines(url)
    _chain_of_three(url)
    ok = rapport(url, "audit", "verify")
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == f"chain intact: 3 events, last hash {_last_hash(engine)}"

    _drop_audit_guard(engine, "update")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET record_id = '99' WHERE seq = 2"))
    bad = rapport(url, "audit", "verify")
    assert bad.exit_code == 1
    assert bad.output.strip() == (
        "error: audit chain broken at position 2: event content altered (1 event(s) before it verified)"
    )


def test_audit_checkpoint_detects_truncation(fresh_url: MakeUrl, engines: MakeEngine, tmp_path: Path) -> None:
    url = fresh_url()
    engine = engines(url)
    _chain_of_three(url)
    file = tmp_path / "audit.json"
    written = rapport(url, "audit", "checkpoint", str(file))
    assert written.exit_code == 0, written.output
    saved = json.loads(file.read_text())
    assert saved["seq"] == 3
    assert saved["hash"] == _last_hash(engine)
    assert set(saved) == {"seq", "hash", "at"}

    assert rapport(url, "user", "create", "heidi", "--role", "sales_rep", "--password", STRONG).exit_code == 0
    grown = rapport(url, "audit", "verify", "--checkpoint", str(file))
    assert grown.exit_code == 0, grown.output
    assert grown.output.startswith("chain intact: 4 events")

    _drop_audit_guard(engine, "delete")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE seq >= 3"))
    # Without the checkpoint the shortened chain still looks whole; with it, the loss shows.
    assert rapport(url, "audit", "verify").exit_code == 0
    cut = rapport(url, "audit", "verify", "--checkpoint", str(file))
    assert cut.exit_code == 1
    assert "error: audit chain broken at position 3: chain truncated before checkpoint" in cut.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not readable JSON"),
        ('{"seq": -1, "hash": "' + "a" * 64 + '"}', "'seq' must be a non-negative integer"),
        ('{"seq": 1, "hash": "xyz"}', "'hash' must be 64 lower-case hex digits"),
    ],
)
def test_audit_verify_rejects_a_bad_checkpoint_file(
    fresh_url: MakeUrl, tmp_path: Path, content: str, message: str
) -> None:
    file = tmp_path / "cp.json"
    file.write_text(content)
    result = rapport(fresh_url(), "audit", "verify", "--checkpoint", str(file))
    assert result.exit_code == 1
    assert message in result.output


def test_audit_checkpoint_refuses_a_broken_chain(
    fresh_url: MakeUrl, engines: MakeEngine, tmp_path: Path
) -> None:
    url = fresh_url()
    engine = engines(url)
    _chain_of_three(url)
    _drop_audit_guard(engine, "update")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET prev_hash = hash WHERE seq = 3"))
    result = rapport(url, "audit", "checkpoint", str(tmp_path / "cp.json"))
    assert result.exit_code == 1
    assert "position 3: link to previous event broken; no checkpoint written" in result.output
    assert not (tmp_path / "cp.json").exists()


# -- db and serve --------------------------------------------------------------------------------


def test_db_upgrade_current_and_check(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'x.db'}"
    behind = rapport(url, "db", "current")
    assert behind.exit_code == 1
    assert behind.output.strip() == f"none (head is {HEAD}; run `rapport db upgrade`)"
    up = rapport(url, "db", "upgrade")
    assert up.exit_code == 0
    assert up.output.strip().endswith(f"is at revision {HEAD} (head)")
    assert rapport(url, "db", "upgrade").exit_code == 0  # idempotent
    assert rapport(url, "db", "current").output.strip() == f"{HEAD} (head)"
    checked = rapport("unused", "db", "check", "--url", url)
    assert checked.exit_code == 0, checked.output
    assert "no drift: the migrations match the models" in checked.output


def test_serve_migrates_then_runs_the_requested_workers_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(serve_module.uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    result = rapport(url, "serve", "--host", "127.0.0.2", "--port", "8123", "--workers", "4")
    assert result.exit_code == 0, result.output
    assert "computed planner statistics" in result.output
    assert calls == [
        (
            "rapport.app:create_app",
            {
                "factory": True,
                "host": "127.0.0.2",
                "port": 8123,
                "workers": 4,
                "reload": False,
                "access_log": False,
            },
        )
    ]
    assert rapport(url, "db", "current").output.strip() == f"{HEAD} (head)"


def test_help_everywhere() -> None:
    for args in (
        [],
        ["serve"],
        ["demo"],
        ["db"],
        ["db", "check"],
        ["user"],
        ["user", "create"],
        ["team"],
        ["audit"],
        ["audit", "verify"],
    ):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage: rapport" in result.output


def test_bad_port_is_a_usage_error() -> None:
    result = runner.invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2


def test_top_level_help_lists_every_command_with_the_help_of_the_command_itself() -> None:
    import re

    from rapport.cli.main import COMMANDS, LazyGroup, load

    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    listed = re.findall(r"^│ ([a-z]+) +(.+?) *│$", result.output, re.M)
    assert listed == [(name, spec.help) for name, spec in COMMANDS.items()]
    for name, spec in COMMANDS.items():
        real = load(name)
        assert real.name == name
        # The stand-in's one-line help is the real command's (a changed docstring must be copied).
        assert (real.help or "").strip().split("\n\n")[0] == spec.help, name
        assert not isinstance(real, LazyGroup)


def test_cli_start_up_imports_no_subcommand_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import rapport.cli.main as m; "
        "print(sorted(n for n in sys.modules if n.startswith(('rapport.cli.', 'duckdb', 'sklearn', "
        "'splink', 'uvicorn', 'rapport.models', 'rapport.ingest'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['rapport.cli.main']"


def test_a_mistyped_command_is_told_the_closest_one() -> None:
    result = runner.invoke(app, ["imprt"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "No such command 'imprt'. Did you mean 'import'?" in result.output
