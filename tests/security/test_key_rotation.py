"""Key rotation re-encrypts in committed batches, resumes after an interruption, and retires the
old version only when no value is left under it; readers decrypt throughout."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from rapport import migrate
from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database, make_engine
from rapport.models import ContactPoint
from rapport.models.base import table_of
from rapport.security import crypto, keyring
from rapport.security.keyring import (
    KEYS,
    finish_rotation,
    keyring_for,
    load_keyring,
    open_rows,
    pending_rows,
    reencrypt_batches,
    scrub_after_first_encryption,
    start_rotation,
    value_counts,
)
from tests.conftest import _drop_schema, _fresh_url
from tests.factories import Factory

CP = table_of(ContactPoint)


def _phones(n: int, start: int = 0) -> list[str]:
    return [f"+861390000{i:04d}" for i in range(start, start + n)]


def _seed(database: Database, phones: list[str]) -> tuple[dict[int, str], dict[str, str]]:
    assert isinstance(database.bind, Engine)
    with database.bind.begin() as conn:
        f = Factory(conn)
        team = f.team()
        rep = f.user("sales_rep", team)
        cid = f.customer(owner_id=rep, team_id=team)
        ids = {f.contact(cid, "phone", p): p for p in phones}
        headers = f.auth(rep)
    return ids, headers


def _plaintexts(database: Database) -> dict[int, str | None]:
    with database.unit(write=False) as session:
        conn = session.connection()
        ring = load_keyring(conn)
        rows = conn.execute(select(CP.c.id, CP.c.value).order_by(CP.c.id)).all()
        return {rid: ring.open_text("contact_point", "value", rid, blob) for rid, blob in rows}


def _counts(database: Database) -> dict[str, int]:
    with database.unit(write=False) as session:
        return value_counts(session.connection())["contact_point.value"]


def _states(database: Database) -> dict[int, str]:
    with database.unit(write=False) as session:
        return dict(session.execute(select(KEYS.c.id, KEYS.c.state).order_by(KEYS.c.id)).all())  # type: ignore[arg-type]


def test_interrupted_rotation_resumes_and_old_values_decrypt_meanwhile(
    settings: Settings, committed_db: Database
) -> None:
    ids, headers = _seed(committed_db, _phones(7))
    assert _counts(committed_db) == {"1": 7}
    with committed_db.unit(write=True) as session:
        assert start_rotation(session.connection()) == 2
    assert _states(committed_db) == {1: "retiring", 2: "active"}

    # One batch of three, then the process "dies".
    batches = reencrypt_batches(lambda: committed_db.unit(write=True), batch_size=3)
    first = next(batches)
    batches.close()
    assert (first.table, first.rows, first.last_id) == ("contact_point", 3, sorted(ids)[2])
    assert _counts(committed_db) == {"1": 4, "2": 3}

    # Mid-rotation: every value still reads back, through the keyring and through the API.
    assert _plaintexts(committed_db) == ids
    with TestClient(create_app(settings, committed_db), raise_server_exceptions=False) as client:
        for rid in (sorted(ids)[0], sorted(ids)[-1]):  # one re-sealed, one still under version 1
            r = client.get(f"/api/v1/contact-points/{rid}", headers=headers)
            assert (r.status_code, r.json()["value"]) == (200, ids[rid])
    # New writes go under the new key straight away.
    more, _ = _seed(committed_db, _phones(1, start=100))
    assert _counts(committed_db) == {"1": 4, "2": 4}
    with committed_db.unit(write=True) as session:
        assert pending_rows(session.connection()) == {
            "contact_point": 4,
            "idempotency_record": 0,
            "customer_merge": 0,
        }
        assert finish_rotation(session.connection()) == []  # not done: version 1 stays retiring
    assert _states(committed_db) == {1: "retiring", 2: "active"}

    # Resume: only the four left are touched.
    rest = list(reencrypt_batches(lambda: committed_db.unit(write=True), batch_size=3))
    assert [b.rows for b in rest] == [3, 1]
    assert _counts(committed_db) == {"2": 8}
    with committed_db.unit(write=True) as session:
        assert finish_rotation(session.connection()) == [1]
    assert _states(committed_db) == {1: "retired", 2: "active"}
    assert _plaintexts(committed_db) == {**ids, **more}
    with committed_db.unit(write=False) as session:
        stored = session.execute(select(CP.c.value, CP.c.value_normalized)).all()
    assert {crypto.key_version_of(bytes(v)) for row in stored for v in row} == {2}


def test_turning_encryption_on_seals_what_was_stored_in_the_clear(committed_db: Database) -> None:
    crypto.set_enabled(False)
    ids, _ = _seed(committed_db, _phones(5))
    assert _counts(committed_db) == {"plain": 5}
    assert _plaintexts(committed_db) == ids  # readable while encryption is off
    crypto.set_enabled(True)
    with committed_db.unit(write=False) as session:
        rid, blob = session.execute(select(CP.c.id, CP.c.value).limit(1)).one()
        try:
            load_keyring(session.connection()).open("contact_point", "value", rid, blob)
        except crypto.PlaintextRefused:
            refused = True
        else:
            refused = False
    assert refused
    with committed_db.unit(write=True) as session:
        assert start_rotation(session.connection()) == 1
    assert sum(b.rows for b in reencrypt_batches(lambda: committed_db.unit(write=True), batch_size=2)) == 5
    assert _counts(committed_db) == {"1": 5}
    assert _plaintexts(committed_db) == ids


def test_migration_encrypts_existing_plaintext_rows_and_downgrade_decrypts(tmp_path: Path) -> None:
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
                    "INSERT INTO contact_point (id, customer_id, kind, label, value, value_normalized, "
                    "district, postal_code, is_primary, is_verified, created_at, updated_at, version) VALUES "
                    "(1, 1, 'phone', 'mobile', '+8613912340000', '+8613912340000', NULL, NULL, true, false, "
                    ":t, :t, 1), (2, 1, 'address', NULL, 'Old Road 1', 'old road 1', 'Pudong', '200120', "
                    "false, false, :t, :t, 1)"
                ),
                {"t": "2026-01-01 00:00:00"},
            )
        migrate.upgrade(url)
        with engine.connect() as conn:
            ring = load_keyring(conn)
            rows = {r.id: r for r in conn.execute(select(CP)).all()}
        assert ring.states == {1: "active"}
        phone, address = rows[1], rows[2]
        assert crypto.key_version_of(bytes(phone.value)) == 1
        assert phone.value_bidx == crypto.blind_index("phone", "+8613912340000")
        assert ring.open_text("contact_point", "value", 1, phone.value) == "+8613912340000"
        assert ring.open_text("contact_point", "label", 1, phone.label) == "mobile"
        assert [
            ring.open_text("contact_point", c, 2, getattr(address, c))
            for c in ("value", "value_normalized", "district", "postal_code")
        ] == ["Old Road 1", "old road 1", "Pudong", "200120"]
        assert address.label is None
        if url.startswith("sqlite"):
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            # secure_delete during the migration zeroed the old pages: no VACUUM needed.
            raw = Path(str(engine.url.database)).read_bytes()
            for needle in (b"+8613912340000", b"Old Road 1", b"Pudong", b"mobile"):
                assert needle not in raw
            assert b"Old Row" in raw  # control: the (unencrypted) name is there
        else:
            assert sorted(scrub_after_first_encryption(engine)) == [
                "contact_point",
                "customer_merge",
                "idempotency_record",
            ]
            with engine.connect() as conn:
                conn.exec_driver_sql("CHECKPOINT")
                heap = bytes(
                    conn.execute(
                        text("SELECT pg_read_binary_file(pg_relation_filepath('contact_point'))")
                    ).scalar_one()
                )
                names = bytes(
                    conn.execute(
                        text("SELECT pg_read_binary_file(pg_relation_filepath('customer'))")
                    ).scalar_one()
                )
            for needle in (b"+8613912340000", b"Old Road 1", b"Pudong", b"mobile"):
                assert needle not in heap
            assert b"Old Row" in names

        command.downgrade(migrate.alembic_config(url), "0001")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT value, district, label FROM contact_point ORDER BY id")).all()
        assert [tuple(r) for r in back] == [
            ("+8613912340000", None, "mobile"),
            ("Old Road 1", "Pudong", None),
        ]
        engine.dispose()
    finally:
        _drop_schema(schema)


def test_cached_readers_pick_up_a_new_version_and_writers_use_it(committed_db: Database) -> None:
    ids, _ = _seed(committed_db, _phones(2))

    def read_all() -> dict[int, str | None]:
        with committed_db.unit(write=False) as session:
            rows = [dict(r) for r in session.execute(select(CP.c.id, CP.c.value)).mappings()]
            open_rows(session, CP, rows)
            return {r["id"]: r["value"] for r in rows}

    assert read_all() == ids
    assert isinstance(committed_db.bind, Engine)
    cache = keyring._RINGS[committed_db.bind]
    stale = cache[crypto.provider().key_id]
    assert sorted(stale.keys) == [1]
    with committed_db.unit(write=True) as session:
        start_rotation(session.connection())
    assert sum(b.rows for b in reencrypt_batches(lambda: committed_db.unit(write=True))) == 2
    # As if another process had rotated: this one's cache still knows version 1 only.
    cache[crypto.provider().key_id] = stale
    assert read_all() == ids  # version 2 did not open: reloaded once, then opened
    assert sorted(cache[crypto.provider().key_id].keys) == [1, 2]
    with committed_db.unit(write=True) as session:
        ring = keyring_for(session, for_write=True)
        assert ring.active == 2
        sealed = ring.seal("contact_point", "value", 99, "x")
    assert sealed is not None and crypto.key_version_of(sealed) == 2
