from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from rapport import migrate
from rapport.db import make_engine
from rapport.security import crypto
from rapport.security.keyring import load_keyring
from tests.cli.test_cli import rapport
from tests.conftest import _drop_schema, _fresh_url
from tests.factories import Factory

MakeUrl = Callable[[], str]
MakeEngine = Callable[[str], Engine]


def _seed(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        f = Factory(conn)
        cid = f.customer()
        for i in range(n):
            f.contact(cid, "phone", f"+861390001{i:04d}", label="手机")


def _status(url: str) -> dict[str, Any]:
    result = rapport(url, "keys", "status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_rotate_in_batches_resume_and_status(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    url = fresh_url()
    _seed(engines(url), 5)
    before = _status(url)
    assert before["master_key_id"] == crypto.provider().key_id
    assert [(v["id"], v["state"], v["values"]) for v in before["versions"]] == [(1, "active", 15)]
    assert before["columns"]["contact_point.value"] == {"1": 5}

    first = rapport(url, "keys", "rotate", "--batch-size", "2", "--max-batches", "1", "--no-progress")
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == [
        "new data key version 2 is active",
        "re-encrypted 2 rows in 1 batches",
        "3 rows still hold values under an older key; run `rapport keys rotate` to resume",
    ]
    middle = _status(url)
    assert [(v["id"], v["state"], v["values"]) for v in middle["versions"]] == [
        (1, "retiring", 9),
        (2, "active", 6),
    ]

    rest = rapport(url, "keys", "rotate", "--batch-size", "2", "--no-progress")
    assert rest.exit_code == 0, rest.output
    assert rest.output.splitlines() == [
        "resuming the unfinished rotation",
        "re-encrypted 3 rows in 2 batches",
        "every value is under the active key; retired version(s) 1",
    ]
    after = _status(url)
    assert [(v["id"], v["state"], v["values"]) for v in after["versions"]] == [
        (1, "retired", 0),
        (2, "active", 15),
    ]
    assert after["plaintext_values"] == 0

    table = rapport(url, "keys", "status")
    assert table.exit_code == 0
    assert "contact_point.value" in table.output and "2: 5" in table.output


def test_rotate_refuses_when_encryption_is_off(fresh_url: MakeUrl) -> None:
    url = fresh_url()
    result = rapport(url, "keys", "rotate", "--no-progress", RAPPORT_FIELD_ENCRYPTION="off")
    assert result.exit_code == 1
    assert "field encryption is off" in result.output


def test_a_wrong_master_key_is_one_clear_line(fresh_url: MakeUrl, engines: MakeEngine) -> None:
    url = fresh_url()
    _seed(engines(url), 1)
    result = rapport(url, "keys", "status", RAPPORT_MASTER_KEY="11" * 32)
    assert result.exit_code == 0  # status reads counts and key metadata, never unwraps
    rotated = rapport(url, "keys", "rotate", "--no-progress", RAPPORT_MASTER_KEY="11" * 32)
    assert rotated.exit_code == 1
    assert "is wrapped by master key" in rotated.output


def test_db_upgrade_encrypts_existing_rows_and_scrubs_their_plaintext(tmp_path: Path) -> None:
    url, schema = _fresh_url(tmp_path)
    try:
        migrate.upgrade(url, revision="0001")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO customer (id, display_name, lifecycle_stage, attributes, created_at, "
                    "updated_at, version) VALUES (1, 'Old Row', 'lead', '{}', :t, :t, 1)"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO contact_point (id, customer_id, kind, value, value_normalized, is_primary, "
                    "is_verified, created_at, updated_at, version) VALUES "
                    "(1, 1, 'email', 'Old@Example.com', 'old@example.com', true, false, :t, :t, 1)"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
        result = rapport(url, "db", "upgrade")
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        if engine.dialect.name == "postgresql":
            assert lines[0].startswith("rewrote ") and "contact_point" in lines[0]
        else:
            assert len(lines) == 1  # SQLite zeroed the old pages during the migration
        status = json.loads(rapport(url, "keys", "status", "--json").output)
        assert status["columns"]["contact_point.value"] == {"1": 1}
        with engine.connect() as conn:
            bidx = conn.execute(text("SELECT value_bidx FROM contact_point")).scalar_one()
        assert bidx == crypto.blind_index("email", "old@example.com")
        engine.dispose()
    finally:
        _drop_schema(schema)


def test_rewrap_changes_the_master_key_without_reencrypting(
    fresh_url: MakeUrl, engines: MakeEngine, tmp_path: Path
) -> None:
    url = fresh_url()
    engine = engines(url)
    _seed(engine, 3)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT id, value, value_bidx FROM contact_point ORDER BY id")).all()
    new_file = tmp_path / "new.key"
    result = rapport(url, "keys", "rewrap", str(new_file), "--generate")
    assert result.exit_code == 0, result.output
    new = crypto.LocalKeyProvider(crypto.master_key_file(new_file))
    assert result.output.splitlines()[0] == (
        f"re-wrapped 1 data key(s) under master key {new.key_id}; recomputed 3 blind index values"
    )
    assert new_file.stat().st_mode & 0o777 == 0o600
    with engine.connect() as conn:
        after = conn.execute(text("SELECT id, value, value_bidx FROM contact_point ORDER BY id")).all()
        # The old master key no longer opens the data keys; the new one does, values unchanged.
        try:
            load_keyring(conn)
        except crypto.MasterKeyError:
            refused = True
        else:
            refused = False
        assert refused
        ring = load_keyring(conn, new)
    assert [r.value for r in after] == [r.value for r in before]  # not re-encrypted
    phones = [ring.open_text("contact_point", "value", r.id, r.value) for r in after]
    assert phones == [f"+861390001{i:04d}" for i in range(3)]
    mac = crypto.index_mac(new)
    assert [r.value_bidx for r in after] == [crypto.blind_index_with(mac, "phone", p or "") for p in phones]
    assert [r.value_bidx for r in after] != [r.value_bidx for r in before]
    # A process started with the new key serves the database.
    status = rapport(url, "keys", "status", "--json", RAPPORT_MASTER_KEY=new_file.read_text().strip())
    assert json.loads(status.output)["master_key_id"] == new.key_id
    again = rapport(url, "keys", "rewrap", str(new_file), RAPPORT_MASTER_KEY=new_file.read_text().strip())
    assert again.exit_code == 1 and "is the current one" in again.output
