"""The audit chain: tamper detection by verify_chain, append-only triggers, and what gets logged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rapport.audit.chain import PendingEvent, append_events, event_hash, verify_chain
from rapport.models import AuditEvent
from tests.factories import PASSWORD, Factory

EVENTS = 5


@pytest.fixture
def session(factory: Factory) -> Iterator[Session]:
    with Session(bind=factory.conn, join_transaction_mode="create_savepoint") as s:
        yield s


@pytest.fixture
def chain(session: Session) -> list[dict[str, Any]]:
    append_events(
        session,
        [
            PendingEvent(action="read", resource="customer", record_id=str(i), actor_id=7, actor_kind="user")
            for i in range(1, EVENTS + 1)
        ],
    )
    session.commit()
    return rows(session.connection())


def rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(AuditEvent.__table__).order_by(AuditEvent.seq)).mappings()]


def drop_append_only(conn: Connection) -> None:
    # Only an attacker with DDL rights can do this; it is rolled back with the test transaction.
    if conn.dialect.name == "sqlite":
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("DROP TRIGGER audit_event_no_delete"))
    else:
        conn.execute(text("DROP TRIGGER audit_event_append_only ON audit_event"))


def checkpoint(chain: list[dict[str, Any]]) -> dict[str, Any]:
    return {"seq": chain[-1]["seq"], "hash": chain[-1]["hash"]}


def test_intact_chain_verifies(session: Session, chain: list[dict[str, Any]]) -> None:
    result = verify_chain(session, checkpoint(chain))
    assert (result.ok, result.checked, result.last_seq, result.bad_seq, result.reason) == (
        True,
        EVENTS,
        EVENTS,
        None,
        None,
    )
    assert result.last_hash == chain[-1]["hash"]


def test_update_and_delete_are_refused_while_the_triggers_exist(
    factory: Factory, chain: list[dict[str, Any]]
) -> None:
    conn = factory.conn
    for stmt in (
        update(AuditEvent.__table__).where(AuditEvent.seq == 2).values(action="tampered"),
        delete(AuditEvent.__table__).where(AuditEvent.seq == 2),
        delete(AuditEvent.__table__),
    ):
        with pytest.raises(DBAPIError, match="append-only"), conn.begin_nested():
            conn.execute(stmt)
    assert rows(conn) == chain


def test_edited_field_is_detected(factory: Factory, session: Session, chain: list[dict[str, Any]]) -> None:
    drop_append_only(factory.conn)
    factory.conn.execute(update(AuditEvent.__table__).where(AuditEvent.seq == 3).values(record_id="999"))
    result = verify_chain(session)
    assert (result.ok, result.bad_seq, result.reason, result.checked) == (
        False,
        3,
        "event content altered",
        2,
    )


def test_deleted_row_is_detected(factory: Factory, session: Session, chain: list[dict[str, Any]]) -> None:
    drop_append_only(factory.conn)
    factory.conn.execute(delete(AuditEvent.__table__).where(AuditEvent.seq == 3))
    result = verify_chain(session)
    assert (result.ok, result.bad_seq, result.reason) == (False, 3, "missing event(s)")


def test_swapped_rows_are_detected(factory: Factory, session: Session, chain: list[dict[str, Any]]) -> None:
    drop_append_only(factory.conn)
    table = AuditEvent.__table__
    second, third = chain[1], chain[2]
    for target, source in ((2, third), (3, second)):
        content = {k: v for k, v in source.items() if k != "seq"}
        factory.conn.execute(update(table).where(table.c.seq == target).values(**content))
    result = verify_chain(session)
    assert (result.ok, result.bad_seq, result.reason) == (False, 2, "link to previous event broken")


def test_truncated_tail_is_detected_only_with_a_checkpoint(
    factory: Factory, session: Session, chain: list[dict[str, Any]]
) -> None:
    mark = checkpoint(chain)
    drop_append_only(factory.conn)
    factory.conn.execute(delete(AuditEvent.__table__).where(AuditEvent.seq > 3))
    # Without a checkpoint a shortened chain is still a valid chain: that is why checkpoints exist.
    assert verify_chain(session).ok is True
    result = verify_chain(session, mark)
    assert (result.ok, result.bad_seq, result.reason, result.last_seq) == (
        False,
        4,
        "chain truncated before checkpoint",
        3,
    )


def test_rewritten_and_rehashed_history_differs_from_checkpoint(
    factory: Factory, session: Session, chain: list[dict[str, Any]]
) -> None:
    mark = checkpoint(chain)
    drop_append_only(factory.conn)
    table = AuditEvent.__table__
    prev = chain[1]["hash"]
    for row in chain[2:]:
        forged = {**row, "record_id": "forged" if row["seq"] == 3 else row["record_id"], "prev_hash": prev}
        forged["hash"] = prev = event_hash(prev, row["seq"], forged)
        factory.conn.execute(
            update(table)
            .where(table.c.seq == row["seq"])
            .values(record_id=forged["record_id"], prev_hash=forged["prev_hash"], hash=forged["hash"])
        )
    # A consistent forgery passes the links; only the externally kept checkpoint exposes it.
    assert verify_chain(session).ok is True
    result = verify_chain(session, mark)
    assert (result.ok, result.bad_seq, result.reason) == (False, EVENTS, "differs from checkpoint")


# -- what the application logs -------------------------------------------------------------------


def events(factory: Factory, request_id: str) -> list[dict[str, Any]]:
    stmt = select(AuditEvent.__table__).where(AuditEvent.request_id == request_id).order_by(AuditEvent.seq)
    return [dict(r) for r in factory.conn.execute(stmt).mappings()]


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    return (
        event["actor_id"],
        event["actor_kind"],
        event["action"],
        event["resource"],
        event["record_id"],
        event["outcome"],
        event["ip"],
        event["fields"],
    )


def test_reads_denials_writes_and_failed_logins_are_logged(
    client: TestClient, factory: Factory, session: Session
) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east, username="audit-rep")
    mine = factory.customer(owner_id=rep, team_id=east)
    theirs = factory.customer(owner_id=None, team_id=north)
    h = factory.auth(rep)

    def call(method: str, url: str, rid: str, **kw: Any) -> int:
        headers = {**h, "X-Request-ID": rid, **kw.pop("headers", {})}
        return client.request(method, url, headers=headers, **kw).status_code

    assert call("GET", f"/api/v1/customers/{mine}", "req-read-0001") == 200
    assert [summary(e) for e in events(factory, "req-read-0001")] == [
        (rep, "user", "read", "customer", str(mine), "ok", "testclient", [])
    ]

    assert call("GET", f"/api/v1/customers/{theirs}", "req-deny-0404") == 404
    assert [summary(e) for e in events(factory, "req-deny-0404")] == [
        (rep, "user", "access", "customer", str(theirs), "denied", "testclient", [])
    ]

    status = call("DELETE", f"/api/v1/customers/{mine}", "req-deny-0403", headers={"If-Match": f'"{mine}.1"'})
    assert status == 403
    assert [summary(e) for e in events(factory, "req-deny-0403")] == [
        (rep, "user", "delete", "customer", str(mine), "denied", "testclient", [])
    ]

    secret_value = "Geheimer-Name-5f9c"
    status = call(
        "PATCH",
        f"/api/v1/customers/{mine}",
        "req-write-0001",
        json={"display_name": secret_value, "city": "Suzhou-Ortsteil-42"},
        headers={"If-Match": f'"{mine}.1"'},
    )
    assert status == 200
    written = events(factory, "req-write-0001")
    assert [summary(e) for e in written] == [
        (rep, "user", "update", "customer", str(mine), "ok", "testclient", ["city", "display_name"])
    ]
    assert secret_value not in repr(written[0]) and "Suzhou-Ortsteil-42" not in repr(written[0])

    r = client.post(
        "/api/v1/auth/token",
        data={"username": "audit-rep", "password": PASSWORD + "-wrong"},
        headers={"X-Request-ID": "req-login-0001"},
    )
    assert r.status_code == 401
    assert [summary(e) for e in events(factory, "req-login-0001")] == [
        (rep, "user", "login", "session", str(rep), "denied", "testclient", [])
    ]
    assert events(factory, "req-login-0001")[0]["details"] == {"reason": "bad-credentials"}

    unknown = client.post(
        "/api/v1/auth/token",
        data={"username": "no-such-user", "password": PASSWORD},
        headers={"X-Request-ID": "req-login-0002"},
    )
    assert unknown.status_code == 401
    assert [summary(e) for e in events(factory, "req-login-0002")] == [
        (None, "anonymous", "login", "session", None, "denied", "testclient", [])
    ]
    # Everything above, allowed or refused, landed in one unbroken chain.
    result = verify_chain(session)
    assert result.ok is True and result.checked == 6
