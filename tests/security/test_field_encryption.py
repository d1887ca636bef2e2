"""Field encryption at rest: nothing readable on disk, tampering and swapping fail loudly.

The raw-storage proofs plant unique values through the API on a really-committing database and
then read the bytes the database engine wrote: the SQLite file and its WAL (before and after a
checkpoint), or on PostgreSQL the relation files and current WAL segments after CHECKPOINT (read
with pg_read_binary_file; the test role is a superuser). A plaintext name planted alongside is the
control: the same search finds it, so a miss for the contact values means something.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select, text, update

from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database
from rapport.models import AuditEvent, ContactPoint, CustomerSearchTerm, IdempotencyRecord
from rapport.models.base import table_of
from rapport.security import crypto
from rapport.security.keyring import load_keyring, open_rows
from tests.factories import Factory

CP = table_of(ContactPoint)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def national_id(body17: str) -> str:
    return body17 + "10X98765432"[sum(int(d) * w for d, w in zip(body17, _WEIGHTS, strict=True)) % 11]


class Planted:
    def __init__(self) -> None:
        # Letters only: a name word with five digits would be kept out of the search terms.
        tag = self.tag = "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(10))
        digits = f"{secrets.randbelow(10**8):08d}"
        self.national = f"139{digits}"  # a valid China Mobile number
        self.phone = f"+86{self.national}"
        self.email = f"planted.{tag}@example.com"
        self.id_number = national_id(f"1101051990{secrets.randbelow(10**7):07d}")
        self.district = f"District{tag}"
        self.postal = f"9{secrets.randbelow(10**5):05d}"
        self.address = f"Planted Road {tag} No. 8"
        self.name = f"Marker{tag} Person"

    def secrets(self) -> dict[str, bytes]:
        """Every form of the planted values that must not be on disk."""
        found: dict[str, bytes] = {}
        for label, value in {
            "phone e164": self.phone,
            "phone national": self.national,
            "email": self.email,
            "national id": self.id_number,
            "district": self.district,
            "address": self.address,
        }.items():
            found[label + " utf-8"] = value.encode()
            found[label + " utf-16"] = value.encode("utf-16-le")
        return found

    def body(self) -> dict[str, Any]:
        return {
            "display_name": self.name,
            "contact_points": [
                {"kind": "phone", "value": f"{self.national[:3]} {self.national[3:7]} {self.national[7:]}"},
                {"kind": "email", "value": self.email.upper()},
                {"kind": "national_id", "value": self.id_number},
                {
                    "kind": "address",
                    "value": self.address,
                    "district": self.district,
                    "postal_code": self.postal,
                    "label": "home",
                },
            ],
        }


@pytest.fixture
def planted(settings: Settings, committed_db: Database) -> tuple[Planted, Database, int]:
    """A customer created through the API, with every read path exercised once."""
    assert isinstance(committed_db.bind, Engine)
    with committed_db.bind.begin() as conn:
        factory = Factory(conn)
        headers = factory.auth(factory.user("sales_rep", factory.team()))
    p = Planted()
    with TestClient(create_app(settings, committed_db), raise_server_exceptions=False) as client:
        posted = client.post(
            "/api/v1/customers", json=p.body(), headers={**headers, "Idempotency-Key": "plant"}
        )
        assert posted.status_code == 201, posted.text
        cid = posted.json()["id"]
        # Reads decrypt: the 360 view, the contact list, one contact, the idempotent replay.
        view = client.get(f"/api/v1/customers/{cid}/360", headers=headers).json()
        values = sorted(c["value"] for c in view["contact_points"])
        assert values == sorted([p.phone, p.email, p.id_number, p.address])
        address = next(c for c in view["contact_points"] if c["kind"] == "address")
        assert (address["district"], address["postal_code"], address["label"]) == (
            p.district,
            p.postal,
            "home",
        )
        listed = client.get("/api/v1/contact-points?limit=10", headers=headers).json()["items"]
        assert sorted(c["value_normalized"] for c in listed) == sorted(
            [p.phone, p.email, p.id_number, p.address.lower()]
        )
        one = client.get(f"/api/v1/contact-points/{listed[0]['id']}", headers=headers).json()
        assert one["value"] == listed[0]["value"]
        assert "value_bidx" not in one
        replay = client.post(
            "/api/v1/customers", json=p.body(), headers={**headers, "Idempotency-Key": "plant"}
        )
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == posted.json()
        # Exact-match search by phone (any format) and email goes through the blind index.
        for q in (
            p.phone,
            p.national,
            f"{p.national[:3]}-{p.national[3:7]}-{p.national[7:]}",
            p.email.upper(),
        ):
            found = client.get("/api/v1/customers", params={"q": q}, headers=headers).json()["items"]
            assert [c["id"] for c in found] == [cid], q
    return p, committed_db, cid


def _absent(blob: bytes, p: Planted, where: str) -> None:
    leaks = [label for label, needle in p.secrets().items() if needle in blob]
    assert leaks == [], f"{where} holds {leaks}"


def test_planted_contact_values_never_reach_the_sqlite_file_or_its_wal(
    planted: tuple[Planted, Database, int],
) -> None:
    p, database, _ = planted
    if not database.sqlite:
        pytest.skip("SQLite storage; the PostgreSQL proof is the next test")
    assert isinstance(database.bind, Engine)
    path = Path(str(database.bind.url.database))
    wal = Path(f"{path}-wal")
    seen = b""
    for moment in ("before checkpoint", "after checkpoint"):
        blobs = {"database file": path.read_bytes(), "WAL": wal.read_bytes() if wal.exists() else b""}
        for where, blob in blobs.items():
            _absent(blob, p, f"{where} {moment}")
            seen += blob
        if moment == "before checkpoint":
            with database.bind.connect() as conn:
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
                assert busy == 0
    # Control: the plaintext name is found by the very same byte search.
    assert p.name.encode() in seen
    assert p.name.encode() in path.read_bytes()


def test_planted_contact_values_never_reach_postgresql_data_files(
    planted: tuple[Planted, Database, int],
) -> None:
    p, database, _ = planted
    if database.sqlite:
        pytest.skip("PostgreSQL storage; run with RAPPORT_TEST_DATABASE_URL")
    assert isinstance(database.bind, Engine)
    with database.bind.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")
        relations = conn.execute(
            text(
                "SELECT c.relname, pg_relation_filepath(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i', 't') "
                "AND pg_relation_size(c.oid) > 0"
            )
        ).all()
        names = {name for name, _ in relations}
        assert {
            "contact_point",
            "customer",
            "customer_search_term",
            "audit_event",
            "idempotency_record",
        } <= names
        customer_heap = b""
        for name, path in relations:
            blob = bytes(conn.execute(text("SELECT pg_read_binary_file(:p)"), {"p": path}).scalar_one())
            _absent(blob, p, f"relation {name} ({path})")
            if name == "customer":
                customer_heap = blob
        # The WAL segments written since the plant: the newest two.
        segments = conn.execute(
            text(
                "SELECT name FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' "
                "ORDER BY modification DESC LIMIT 2"
            )
        ).scalars()
        for segment in segments:
            blob = bytes(
                conn.execute(text("SELECT pg_read_binary_file(:p)"), {"p": f"pg_wal/{segment}"}).scalar_one()
            )
            _absent(blob, p, f"WAL segment {segment}")
    assert p.name.encode() in customer_heap  # control: the plaintext name is on disk


def test_planted_values_are_not_in_search_terms_audit_or_idempotency_rows(
    planted: tuple[Planted, Database, int],
) -> None:
    p, database, cid = planted
    with database.unit(write=False) as session:
        terms = session.execute(
            select(CustomerSearchTerm.term).where(CustomerSearchTerm.customer_id == cid)
        ).scalars()
        audit = session.execute(select(table_of(AuditEvent))).all()
        bodies = session.execute(select(IdempotencyRecord.response_body)).scalars().all()
        stored = session.execute(select(CP.c.value, CP.c.value_normalized, CP.c.value_bidx)).all()
    text_of_audit = repr(audit)
    for needle in (p.phone, p.national, p.email, p.id_number, p.district, p.address):
        assert needle not in text_of_audit
    word = f"marker{p.tag}"
    assert sorted(terms) == sorted({word, "person", f"{word} person", f"{word}person"})
    assert len(bodies) == 1 and bodies[0] is not None and bodies[0][0] == crypto.SEALED
    for value, normalized, bidx in stored:
        assert value[0] == crypto.SEALED and normalized[0] == crypto.SEALED
        assert len(bidx) == 32
    assert {row.value_bidx for row in stored} >= {
        crypto.blind_index("phone", p.phone),
        crypto.blind_index("email", p.email),
        crypto.blind_index("national_id", p.id_number),
    }


# -- integrity: tampering and swapping -------------------------------------------------------------


def _flip(blob: bytes, byte: int, bit: int = 0) -> bytes:
    out = bytearray(blob)
    out[byte] ^= 1 << bit
    return bytes(out)


def _stored(conn: Connection, contact_id: int, column: str = "value") -> bytes:
    return bytes(conn.execute(select(CP.c[column]).where(CP.c.id == contact_id)).scalar_one())


def _set(conn: Connection, contact_id: int, column: str, blob: bytes) -> None:
    conn.execute(update(CP).where(CP.c.id == contact_id).values({column: blob}))


@pytest.mark.parametrize(
    ("byte", "error"),
    [
        (0, crypto.TamperedCiphertext),  # format marker
        (4, crypto.UnknownKeyVersion),  # key version
        (5, crypto.TamperedCiphertext),  # nonce
        (20, crypto.TamperedCiphertext),  # ciphertext
        (-1, crypto.TamperedCiphertext),  # tag
    ],
)
def test_a_flipped_bit_fails_with_a_specific_error(
    factory: Factory, connection: Connection, byte: int, error: type[Exception]
) -> None:
    cid = factory.customer()
    contact = factory.contact(cid, "phone", "+8613912345678")
    sealed = _stored(connection, contact)
    ring = load_keyring(connection)
    assert ring.open_text("contact_point", "value", contact, sealed) == "+8613912345678"
    with pytest.raises(error):
        ring.open("contact_point", "value", contact, _flip(sealed, byte))
    assert issubclass(error, crypto.DecryptionError)


def test_a_tampered_value_answers_500_without_leaking(
    factory: Factory, connection: Connection, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team)
    contact = factory.contact(cid, "email", "secret.person@example.com")
    _set(connection, contact, "value", _flip(_stored(connection, contact), 30, 3))
    for path in (f"/api/v1/contact-points/{contact}", f"/api/v1/customers/{cid}/360"):
        r = client.get(path, headers=factory.auth(rep))
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["type"].endswith("/stored-data-unreadable")
        assert problem["detail"] == (
            "A stored value could not be decrypted; quote the request id when reporting it."
        )
        assert "secret" not in r.text and "contact_point" not in r.text
    # Operators learn where: table, column and row, never the value.
    assert f"contact_point.value row {contact}: authentication failed" in caplog.text
    assert "secret.person" not in caplog.text


def test_a_ciphertext_moved_to_another_row_or_column_does_not_decrypt(
    factory: Factory, connection: Connection
) -> None:
    cid = factory.customer()
    mine = factory.contact(cid, "phone", "+8613911111111")
    theirs = factory.contact(factory.customer(), "phone", "+8613922222222")
    ring = load_keyring(connection)
    # Swap rows: each ciphertext is valid, just not for the row it now sits in.
    a, b = _stored(connection, mine), _stored(connection, theirs)
    _set(connection, mine, "value", b)
    _set(connection, theirs, "value", a)
    for row, blob in ((mine, b), (theirs, a)):
        with pytest.raises(crypto.TamperedCiphertext):
            ring.open("contact_point", "value", row, blob)
    # Same row, other column: value_normalized's ciphertext in value.
    normalized = _stored(connection, mine, "value_normalized")
    with pytest.raises(crypto.TamperedCiphertext):
        ring.open("contact_point", "value", mine, normalized)
    # And it still opens where it belongs.
    assert ring.open_text("contact_point", "value_normalized", mine, normalized) == "+8613911111111"


def test_plaintext_planted_in_a_sealed_column_is_refused(factory: Factory, connection: Connection) -> None:
    contact = factory.contact(factory.customer(), "phone", "+8613933333333")
    ring = load_keyring(connection)
    for planted in (crypto.plain_bytes(b"+8613944444444"), "+8613944444444"):
        with pytest.raises(crypto.PlaintextRefused):
            ring.open("contact_point", "value", contact, planted)


def test_open_rows_opens_like_the_keyring_and_refuses_what_it_refuses(
    factory: Factory, connection: Connection
) -> None:
    """open_rows decrypts well-formed values inline; every other value takes Keyring.open's path."""
    cid = factory.customer()
    phone = factory.contact(cid, "phone", "+8613955555555")
    email = factory.contact(cid, "email", "王@例子.cn")
    sealed_phone, sealed_email = _stored(connection, phone), _stored(connection, email)
    rows: list[dict[str, Any]] = [
        {"id": phone, "value": sealed_phone, "label": None},
        {"id": email, "value": sealed_email, "label": None},
    ]
    open_rows(connection, CP, rows)
    assert [r["value"] for r in rows] == ["+8613955555555", "王@例子.cn"]
    bad: list[tuple[Any, type[Exception]]] = [
        (sealed_email, crypto.TamperedCiphertext),  # another row's ciphertext
        (_flip(sealed_phone, 30), crypto.TamperedCiphertext),
        (_flip(sealed_phone, 0), crypto.TamperedCiphertext),
        (_flip(sealed_phone, 4), crypto.UnknownKeyVersion),
        (sealed_phone[:20], crypto.TamperedCiphertext),
        (crypto.plain_bytes(b"+8613944444444"), crypto.PlaintextRefused),
        ("+8613944444444", crypto.PlaintextRefused),
    ]
    for blob, error in bad:
        with pytest.raises(error):
            open_rows(connection, CP, [{"id": phone, "value": blob}])
    row = {"id": phone, "value": memoryview(sealed_phone)}  # what some drivers hand back
    open_rows(connection, CP, [row])
    assert row["value"] == "+8613955555555"


def test_associated_data_names_table_column_and_row() -> None:
    assert crypto.associated_data(b"H", "contact_point", "value", 7) == b"H|contact_point.value#7"


# -- the blind index -------------------------------------------------------------------------------


def test_blind_index_is_keyed_kind_separated_and_truncated() -> None:
    digest = crypto.blind_index("phone", "+8613912345678")
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert crypto.blind_index("phone", "+8613912345678") == digest
    assert crypto.blind_index("wechat", "+8613912345678") != digest
    assert crypto.blind_index("phone", "+8613912345679") != digest
    other = crypto.LocalKeyProvider(bytes(32))
    crypto.configure(other)
    assert crypto.blind_index("phone", "+8613912345678") != digest
    # HMAC-SHA256(HKDF(master, "rapport/blind-index/v1"), kind NUL value)[:16]
    import hashlib
    import hmac

    key = other.derive("blind-index/v1")
    expected = hmac.new(key, b"phone\0+8613912345678", hashlib.sha256).digest()[:16].hex()
    assert crypto.blind_index("phone", "+8613912345678") == expected


def test_search_by_phone_and_email_uses_the_blind_index(factory: Factory, client: TestClient) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team)
    factory.contact(cid, "phone", "+8613955555555", value_normalized="+8613955555555")
    factory.contact(cid, "email", "find.me@example.com")
    headers = factory.auth(rep)
    for q in ("+86 139 5555 5555", "13955555555", "FIND.ME@example.com"):
        items = client.get("/api/v1/customers", params={"q": q}, headers=headers).json()["items"]
        assert [c["id"] for c in items] == [cid], q
    assert client.get("/api/v1/customers", params={"q": "13955555556"}, headers=headers).json()["items"] == []


def test_names_holding_contact_values_stay_out_of_the_search_terms(
    factory: Factory, client: TestClient, connection: Connection
) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    r = client.post(
        "/api/v1/customers",
        json={"display_name": "王五 13912345678", "name_latin": "wang.wu@example.com"},
        headers=factory.auth(rep),
    )
    assert r.status_code == 201, r.text
    terms = set(
        connection.execute(
            select(CustomerSearchTerm.term).where(CustomerSearchTerm.customer_id == r.json()["id"])
        ).scalars()
    )
    assert terms == {"王五", "五", "wangwu", "ww", "wu", "wang wu"}


def test_national_id_is_checked_and_normalised(factory: Factory, client: TestClient) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team)
    headers = factory.auth(rep)
    good = national_id("11010519491231002")
    r = client.post(
        f"/api/v1/customers/{cid}/contact-points",
        json={"kind": "national_id", "value": f"{good[:6]} {good[6:14]} {good[14:].lower()}"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert (r.json()["value"], r.json()["value_normalized"]) == (good, good)
    wrong = good[:17] + ("0" if good[17] != "0" else "1")
    r = client.post(
        f"/api/v1/customers/{cid}/contact-points",
        json={"kind": "national_id", "value": wrong},
        headers=headers,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"] == "not a valid resident identity number (check character)"


def test_updating_a_value_reseals_it_and_moves_the_blind_index(
    factory: Factory, client: TestClient, connection: Connection
) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team)
    contact = factory.contact(cid, "phone", "+8613966666666")
    before = _stored(connection, contact)
    r = client.patch(
        f"/api/v1/contact-points/{contact}",
        json={"value": "139 7777 7777"},
        headers={**factory.auth(rep), "If-Match": f'"{contact}.1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["value"] == "+8613977777777"
    row = factory.contact_plain(contact)
    assert (row["value"], row["value_bidx"]) == (
        "+8613977777777",
        crypto.blind_index("phone", "+8613977777777"),
    )
    assert _stored(connection, contact) != before


# -- the master key --------------------------------------------------------------------------------


def test_master_key_file_is_created_0600_and_loose_permissions_are_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", master_key=None)
    crypto.configure_from_settings(settings)
    key_id = crypto.provider().key_id
    path = tmp_path / "data" / "master.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(crypto.parse_master_key(path.read_text())) == 32
    crypto.configure_from_settings(settings)
    assert crypto.provider().key_id == key_id  # read back, not recreated
    path.chmod(0o644)
    crypto.configure_from_settings(settings)
    with pytest.raises(crypto.MasterKeyError, match="readable by others"):
        crypto.provider()


def test_master_key_from_the_environment_and_a_wrong_one_is_refused(
    factory: Factory, connection: Connection
) -> None:
    contact = factory.contact(factory.customer(), "phone", "+8613988888888")
    crypto.configure(crypto.LocalKeyProvider(b"\x01" * 32))
    with pytest.raises(crypto.MasterKeyError, match="wrapped by master key"):
        load_keyring(connection)
    assert contact > 0
    assert crypto.parse_master_key("ab" * 32) == b"\xab" * 32
    with pytest.raises(crypto.MasterKeyError):
        crypto.parse_master_key("too-short")


def test_key_provider_is_a_protocol_a_kms_can_implement(factory: Factory, connection: Connection) -> None:
    class FakeKms:
        key_id = "kms:test"

        def wrap(self, data_key: bytes, context: bytes) -> bytes:
            return context + b"|" + data_key[::-1]

        def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
            prefix, _, key = wrapped.partition(b"|")
            assert prefix == context
            return key[::-1]

        def derive(self, label: str) -> bytes:
            return label.encode().ljust(32, b"\0")

    assert isinstance(FakeKms(), crypto.KeyProvider)
    crypto.configure(FakeKms())
    contact = factory.contact(factory.customer(), "email", "kms@example.com")
    assert factory.contact_plain(contact)["value"] == "kms@example.com"
    stored = connection.execute(text("SELECT master_key_id FROM encryption_key")).scalars().all()
    assert stored == ["kms:test"]


def test_concurrent_first_starts_agree_on_one_master_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.key"
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def start() -> None:
        barrier.wait()
        keys.append(crypto.master_key_file(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.key"]  # no temporary left
