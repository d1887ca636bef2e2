from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rapport.access.policy import Role
from rapport.access.principal import SYSTEM, Principal
from rapport.analytics.store import AnalyticsStore
from rapport.audit.chain import verify_chain
from rapport.cli.main import app as cli
from rapport.config import Settings
from rapport.db import Database
from rapport.errors import Forbidden, NotFound
from rapport.models import (
    ContactPoint,
    Customer,
    CustomerSearchTerm,
    CustomerTag,
    IdempotencyRecord,
    Interaction,
    Order,
    Task,
)
from rapport.models.base import utcnow
from rapport.privacy import erasure
from rapport.privacy.erasure import ERASED, erase_customer
from rapport.privacy.tasks import run_erasure
from rapport.security.keyring import keyring_for
from tests.demo.conftest import api_client, engines, fresh_url
from tests.factories import Factory
from tests.privacy.helpers import audit_rows, plant_person

__all__ = ["engines", "fresh_url"]


def _principal(role: str, user_id: int, team_id: int | None) -> Principal:
    return Principal(user_id=user_id, username=f"u{user_id}", role=Role(role), team_id=team_id)


def test_erasure_clears_every_place_a_person_is_stored(factory: Factory, db: Session, tmp_path: Path) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    p = plant_person(factory, rep, team)
    other = factory.customer(rep, team, display_name="别人")
    other_contact = factory.contact(other, "phone", "+8613700000000")
    mention = factory.interaction(other, rep, body="referred by ZetaQ7XQuill, a friend")
    factory.task(other, rep, title="unrelated")
    factory.conn.execute(insert(CustomerTag).values([{"customer_id": p.customer_id, "tag": "vip"}]))
    factory.conn.execute(
        insert(CustomerSearchTerm).values([{"customer_id": p.customer_id, "term": "zetaq7xquill"}])
    )
    keys = [
        # the create response, echoing the name
        ("/api/v1/customers", f'{{"id":{p.customer_id},"display_name":"龙Q7X雪"}}'.encode()),
        # a child created under the customer's path
        (f"/api/v1/customers/{p.customer_id}/interactions", b'{"id":1}'),
        # an unrelated customer's create response: must survive
        ("/api/v1/customers", f'{{"id":{other},"display_name":"别人"}}'.encode()),
    ]
    ring = keyring_for(factory.conn, for_write=True)
    for n, (path, body) in enumerate(keys):
        # Stored responses are sealed at rest, bound to their row id, as the API stores them.
        factory.conn.execute(
            insert(IdempotencyRecord).values(
                id=1000 + n,
                owner="user:1",
                key=f"k{n}",
                method="POST",
                path=path,
                body_hash="h",
                status_code=201,
                response_body=ring.seal("idempotency_record", "response_body", 1000 + n, body),
                created_at=utcnow(),
            )
        )

    store_path = tmp_path / "analytics.duckdb"
    with AnalyticsStore.open(store_path) as store:
        store.sync(db)
        assert store.count("customers") == 2

    report = erase_customer(db, p.customer_id, actor=SYSTEM, reason="dsr:1", analytics_path=store_path)

    assert report.counts == {
        "contact_points": 2,
        "tags": 1,
        "search_terms": 1,
        "interactions": 1,
        "tasks": 1,
        "orders_detached": 1,
        "request_texts": 0,
        "idempotency_records": 2,
    }
    assert report.already_erased is False
    assert report.mentions_elsewhere == {"interaction": [mention]}  # left for the handler to review
    row = factory.row(Customer, p.customer_id)
    assert row["display_name"] == ERASED
    assert [row[c] for c in erasure.CLEARED_CUSTOMER_COLUMNS] == [None] * 12
    assert row["attributes"] == {}
    assert row["deleted_at"] is not None and row["erased_at"] is not None
    assert row["owner_id"] == rep  # staff id kept for case scoping
    conn = factory.conn
    assert conn.execute(select(ContactPoint.id).order_by(ContactPoint.id)).scalars().all() == [other_contact]
    assert conn.execute(select(CustomerTag.customer_id)).scalars().all() == []
    assert conn.execute(select(CustomerSearchTerm.customer_id)).scalars().all() == []
    interaction = factory.row(Interaction, p.interaction_id)
    assert (interaction["subject"], interaction["body"], interaction["kind"]) == (None, None, "note")
    task = factory.row(Task, p.task_id)
    assert (task["title"], task["description"]) == (ERASED, None)
    order = factory.row(Order, p.order_id)
    assert (order["customer_id"], order["total_amount"]) == (p.customer_id, 100)
    assert conn.execute(select(IdempotencyRecord.key)).scalars().all() == ["k2"]
    # the customer row, their order (it has no lines), interaction and task left the store
    assert report.analytics == "forgotten: 4 rows"
    with AnalyticsStore.open(store_path) as store:
        assert [r[0] for r in store.con.execute("SELECT customer_id FROM customers").fetchall()] == [other]
        assert store.con.execute(
            "SELECT count(*) FROM orders WHERE customer_id = ?", [p.customer_id]
        ).fetchone() == (0,)


def test_erasure_is_audited_with_ids_and_counts_only(factory: Factory, db: Session) -> None:
    team = factory.team()
    p = plant_person(factory, None, team)
    erase_customer(db, p.customer_id, actor=SYSTEM, reason="GDPR art. 17 request from 龙Q7X雪")
    (event,) = [e for e in db.info["audit"] if e.action == "erase"]
    assert (event.resource, event.record_id, event.actor_kind) == ("customer", str(p.customer_id), "system")
    # Free-text reasons stay out of the append-only chain: they could name the person.
    assert event.details["reason"] == "stated in the request case"
    assert event.details["counts"]["contact_points"] == 2
    assert not any(tok in repr(event) for tok in p.tokens)


def test_erasing_twice_is_harmless(factory: Factory, db: Session) -> None:
    p = plant_person(factory, None, None)
    erase_customer(db, p.customer_id, actor=SYSTEM, reason="dsr:1")
    first = factory.row(Customer, p.customer_id)["erased_at"]
    again = erase_customer(db, p.customer_id, actor=SYSTEM, reason="dsr:1")
    assert again.already_erased is True
    assert again.counts["contact_points"] == 0
    assert factory.row(Customer, p.customer_id)["erased_at"] == first


def test_erasure_needs_delete_permission_and_scope(factory: Factory, db: Session) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    p = plant_person(factory, rep, east)
    with pytest.raises(Forbidden):
        erase_customer(db, p.customer_id, actor=_principal("sales_rep", rep, east), reason="x")
    lead_north = factory.user("team_lead", north)
    with pytest.raises(NotFound):
        erase_customer(db, p.customer_id, actor=_principal("team_lead", lead_north, north), reason="x")
    with pytest.raises(NotFound):
        erase_customer(db, 10**9, actor=SYSTEM, reason="x")
    assert factory.row(Customer, p.customer_id)["erased_at"] is None
    lead_east = factory.user("team_lead", east)
    erase_customer(db, p.customer_id, actor=_principal("team_lead", lead_east, east), reason="x")
    assert factory.row(Customer, p.customer_id)["erased_at"] is not None


def test_erasure_runs_registered_hooks(
    factory: Factory, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def hook(session: Session, customer_id: int) -> str:
        seen.append(customer_id)
        return "cache cleared"

    monkeypatch.setattr(erasure, "ERASURE_HOOKS", [hook])
    cid = factory.customer()
    report = erase_customer(db, cid, actor=SYSTEM, reason="x")
    assert seen == [cid]
    assert report.hooks == ["cache cleared", "duplicate-detection pairs deleted"]


# -- proof on a real, committed database ----------------------------------------------------------


def _all_values(engine: Engine) -> str:
    """Every stored value of every table as one text (bytes decoded), for a logical search."""
    parts: list[str] = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            query = text(f'SELECT * FROM "{table}"')  # noqa: S608 (names from the inspector)
            for row in conn.execute(query):
                for v in row:
                    parts.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
    return "\n".join(parts)


def _file_bytes(url: str) -> bytes:
    path = Path(make_url(url).database or "")
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def _plant_through_api(
    client: TestClient, headers: dict[str, str], mark: str, phone: str
) -> tuple[int, list[str]]:
    name, email, note = f"凤{mark}鸣", f"fm.{mark.lower()}@example.net", f"Note{mark}Body"
    created = client.post(
        "/api/v1/customers",
        json={
            "display_name": name,
            "name_latin": f"Feng{mark}Ming",
            "contact_points": [{"kind": "phone", "value": phone}, {"kind": "email", "value": email}],
        },
        headers={**headers, "Idempotency-Key": f"create-{mark}"},
    )
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    noted = client.post(
        f"/api/v1/customers/{cid}/interactions",
        json={"kind": "note", "subject": f"Subj{mark}", "body": note},
        headers={**headers, "Idempotency-Key": f"note-{mark}"},
    )
    assert noted.status_code == 201, noted.text
    assert client.get(f"/api/v1/customers/{cid}/360", headers=headers).status_code == 200
    return cid, [name, f"Feng{mark}Ming", phone, email, note, f"Subj{mark}"]


def test_planted_values_are_gone_from_the_database_files_after_erasure(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], settings: Settings
) -> None:
    url = fresh_url()
    engine = engines(url)
    with engine.begin() as conn:
        f = Factory(conn)
        admin = f.user("admin")
        token = f.token(admin)
    headers = {"Authorization": f"Bearer {token}"}
    with api_client(settings, engine) as client:
        victim, tokens = _plant_through_api(client, headers, "K9W", "+8613911112222")
        _, kept_tokens = _plant_through_api(client, headers, "B4R", "+8613933334444")
    sqlite = engine.dialect.name == "sqlite"
    # Phone and email are encrypted at rest (tests/security/test_field_encryption.py), so only the
    # values stored in the clear can be found before the erasure: that is what makes it a proof.
    kept_clear = [kept_tokens[0], kept_tokens[1], kept_tokens[4], kept_tokens[5]]
    before = _all_values(engine)
    assert [t for t in tokens if t not in before] == [tokens[2], tokens[3]]
    if sqlite:
        raw = _file_bytes(url)
        assert [t for t in tokens if t.encode() not in raw] == [tokens[2], tokens[3]]

    report = run_erasure(Database(engine), victim, actor=SYSTEM, reason="dsr:1", vacuum=True)
    assert report.counts["contact_points"] == 2
    assert report.counts["idempotency_records"] == 2

    after = _all_values(engine)
    assert [t for t in tokens if t in after] == []
    assert all(t in after for t in kept_clear)
    if sqlite:
        raw = _file_bytes(url)
        assert [t for t in tokens if t.encode() in raw] == []
        assert all(t.encode() in raw for t in kept_clear)
    with Session(engine) as session:
        assert verify_chain(session).ok is True
    result = CliRunner().invoke(cli, ["audit", "verify", "--url", url])
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        events = audit_rows(conn, "erase")
        assert [(e["record_id"], e["details"]["counts"]["interactions"]) for e in events] == [
            (str(victim), 1)
        ]
        assert conn.execute(select(func.count()).select_from(Customer)).scalar_one() == 2


def test_secure_delete_alone_scrubs_deleted_rows_after_a_checkpoint(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], settings: Settings
) -> None:
    url = fresh_url()
    engine = engines(url)
    if engine.dialect.name != "sqlite":
        pytest.skip("file bytes are checked on SQLite only (PostgreSQL: see README, Erasure)")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar_one() == 1
        f = Factory(conn)
        cid = f.customer(display_name="ScrubMe7731")
        f.contact(cid, "email", "scrub7731@example.org")
    db = Database(engine)
    run_erasure(db, cid, actor=SYSTEM, reason="x", vacuum=False)  # checkpoint only, no VACUUM
    raw = _file_bytes(url)
    assert b"ScrubMe7731" not in raw
    assert b"scrub7731@example.org" not in raw


def test_an_erasure_through_the_api_is_scrubbed_from_the_files_at_once(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], settings: Settings
) -> None:
    url = fresh_url()
    engine = engines(url)
    if engine.dialect.name != "sqlite":
        pytest.skip("file bytes are checked on SQLite only (PostgreSQL: see README, Erasure)")
    with engine.begin() as conn:
        token = Factory(conn).token(Factory(conn).user("crm_specialist"))
    headers = {"Authorization": f"Bearer {token}"}
    base = "/api/v1/privacy/requests"
    with api_client(settings, engine) as client:
        victim, tokens = _plant_through_api(client, headers, "H2D", "+8613955556666")
        case = client.post(
            base, json={"customer_id": victim, "kind": "delete", "channel": "email"}, headers=headers
        ).json()
        for status in ("verified", "in_progress", "completed"):
            etag = client.get(f"{base}/{case['id']}", headers=headers).headers["etag"]
            r = client.post(
                f"{base}/{case['id']}/status", json={"status": status}, headers={**headers, "If-Match": etag}
            )
            assert r.status_code == 200, r.text
    raw = _file_bytes(url)
    assert [t for t in tokens if t.encode() in raw] == []


def test_an_erased_customer_cannot_be_restored(client: TestClient, factory: Factory, db: Session) -> None:
    cid = factory.customer()
    erase_customer(db, cid, actor=SYSTEM, reason="dsr:1")
    version = factory.row(Customer, cid)["version"]
    h = {**factory.auth(factory.user("admin")), "If-Match": f'"{cid}.{version}"'}
    r = client.post(f"/api/v1/customers/{cid}/restore", headers=h)
    assert r.status_code == 409
    assert r.json()["detail"] == f"customer {cid} was erased; erasure cannot be undone"
    assert factory.row(Customer, cid)["deleted_at"] is not None


def _pg_relation_bytes(engine: Engine) -> bytes:
    """The on-disk files of this schema's tables, their TOAST tables and every index."""
    with engine.connect() as conn:
        datadir = Path(conn.execute(text("SHOW data_directory")).scalar_one())
        conn.execute(text("CHECKPOINT"))  # write dirty shared buffers to the files
        paths = (
            conn.execute(
                text(
                    "WITH t AS (SELECT c.oid, c.reltoastrelid FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind = 'r'), "
                    "rels AS (SELECT oid FROM t UNION SELECT reltoastrelid FROM t WHERE reltoastrelid <> 0), "
                    "idx AS (SELECT indexrelid AS oid FROM pg_index "
                    "WHERE indrelid IN (SELECT oid FROM rels)) "
                    "SELECT pg_relation_filepath(oid) FROM (SELECT oid FROM rels UNION SELECT oid FROM idx) x"
                )
            )
            .scalars()
            .all()
        )
    data = b""
    for rel in paths:
        base = datadir / rel
        for f in [base, *sorted(base.parent.glob(base.name + ".[0-9]*"))]:
            if f.exists():
                data += f.read_bytes()
    return data


@pytest.mark.parametrize("full", [True, False], ids=["vacuum-full", "plain-vacuum"])
def test_postgresql_files_after_erasure(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine], settings: Settings, full: bool
) -> None:
    url = fresh_url()
    engine = engines(url)
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    with engine.connect() as conn:
        datadir = Path(conn.execute(text("SHOW data_directory")).scalar_one())
    if not os.access(datadir, os.R_OK):
        pytest.skip("the server's data directory is not readable from here")
    with engine.begin() as conn:
        token = Factory(conn).token(Factory(conn).user("admin"))
    with api_client(settings, engine) as client:
        victim, tokens = _plant_through_api(
            client, {"Authorization": f"Bearer {token}"}, "P5G", "+8613977778888"
        )
    # Phone and email are sealed at rest; the values stored in the clear are in the files now.
    stored = _pg_relation_bytes(engine)
    assert [t for t in tokens if t.encode() not in stored] == [tokens[2], tokens[3]]
    run_erasure(Database(engine), victim, actor=SYSTEM, reason="dsr:1", vacuum=full)
    left = [t for t in tokens if t.encode() in _pg_relation_bytes(engine)]
    if full:
        assert left == []
    else:
        # Plain VACUUM frees dead tuples for reuse without promising to overwrite them (page
        # pruning sometimes does): only VACUUM FULL, a rewrite into new files, guarantees the bytes
        # are gone, so the purge runs it. Logically the values are gone either way.
        assert [t for t in tokens if t in _all_values(engine)] == []
