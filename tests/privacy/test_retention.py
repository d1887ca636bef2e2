from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rapport.cli.main import app as cli
from rapport.config import Settings
from rapport.models import (
    AuthToken,
    Customer,
    DataSubjectRequest,
    IdempotencyRecord,
    Interaction,
)
from rapport.privacy import requests as dsr
from rapport.privacy.requests import RequestKind
from rapport.privacy.retention import purge
from tests.demo.conftest import engines, fresh_url
from tests.factories import Factory
from tests.privacy.helpers import audit_rows

__all__ = ["engines", "fresh_url"]

NOW = dt.datetime(2030, 6, 15, 12, 0, tzinfo=dt.UTC)
SETTINGS = Settings(secret_key="x" * 40, tune_gc=False)


def _ago(**kw: Any) -> dt.datetime:
    return NOW - dt.timedelta(**kw)


def _arrange(factory: Factory) -> dict[str, Any]:
    """One record on each side of every rule's line, at a frozen 'now'."""
    f, ids = factory, {}
    old = _ago(days=3 * 365 + 5)
    ids["inactive"] = f.customer(display_name="Dormant Person", created_at=old, updated_at=old)
    ids["active_by_order"] = f.customer(created_at=old, updated_at=old)
    f.order(ids["active_by_order"], ordered_at=_ago(days=100))
    ids["active_by_update"] = f.customer(created_at=old, updated_at=_ago(days=10))
    ids["chat_old"] = f.interaction(ids["active_by_update"], kind="chat", occurred_at=_ago(days=200))
    ids["chat_new"] = f.interaction(ids["active_by_update"], kind="chat", occurred_at=_ago(days=100))
    ids["note_old"] = f.interaction(ids["active_by_update"], kind="note", occurred_at=_ago(days=800))
    ids["note_new"] = f.interaction(ids["active_by_update"], kind="note", occurred_at=_ago(days=200))
    user = f.user("admin")
    for name, expires, revoked in (
        ("token_old", _ago(days=31), None),
        ("token_revoked_old", NOW + dt.timedelta(days=1), _ago(days=40)),
        ("token_new", _ago(days=29), None),
    ):
        ids[name] = f.conn.execute(
            insert(AuthToken)
            .values(
                token_hash=name,
                kind="refresh",
                user_id=user,
                family="f",
                created_at=_ago(days=60),
                expires_at=expires,
                revoked_at=revoked,
            )
            .returning(AuthToken.id)
        ).scalar_one()
    for name, at in (("key_old", _ago(hours=25)), ("key_new", _ago(hours=23))):
        ids[name] = f.conn.execute(
            insert(IdempotencyRecord)
            .values(owner="user:1", key=name, method="POST", path="/x", body_hash="h", created_at=at)
            .returning(IdempotencyRecord.id)
        ).scalar_one()
    return ids


def _cases(db: Session, customer_id: int) -> dict[str, int]:
    d = DataSubjectRequest.__table__
    ids = {}
    for name, completed, expires in (
        ("export_expired", _ago(days=40), _ago(days=10)),
        ("export_live", _ago(days=5), NOW + dt.timedelta(days=25)),
        ("case_ancient", _ago(days=3 * 366 + 1), None),
    ):
        case = dsr.open_request(
            db,
            customer_id,
            RequestKind.access,
            channel="email",
            details="text",
            actor=None,
            now=completed - dt.timedelta(days=3),
        )
        db.execute(
            update(d)
            .where(d.c.id == case.id)
            .values(
                status="completed",
                completed_at=completed,
                resolution="done",
                export_body=b'{"x":1}' if expires else None,
                export_expires_at=expires,
            )
        )
        ids[name] = case.id
    return ids


def test_purge_applies_each_rule_at_a_frozen_now(factory: Factory, db: Session) -> None:
    ids = _arrange(factory)
    ids |= _cases(db, ids["active_by_update"])
    db.info.pop("audit", None)

    dry = purge(db, now=NOW, dry_run=True, settings=SETTINGS)
    expected = {
        "inactive_customers": [ids["inactive"]],
        "chat_transcripts": [ids["chat_old"]],
        "interaction_bodies": [ids["note_old"]],
        "dsr_exports": [ids["export_expired"]],
        "dsr_case_texts": [ids["case_ancient"]],
        "auth_tokens": sorted([ids["token_old"], ids["token_revoked_old"]]),
        "idempotency_keys": [ids["key_old"]],
    }
    assert {r.rule: r.ids for r in dry.results} == expected
    assert "audit" not in db.info  # a dry run changes and records nothing
    assert factory.row(Customer, ids["inactive"])["erased_at"] is None

    done = purge(db, now=NOW, settings=SETTINGS)
    assert {r.rule: r.ids for r in done.results} == expected
    assert factory.row(Customer, ids["inactive"])["display_name"] == "[erased]"
    assert factory.row(Customer, ids["active_by_order"])["erased_at"] is None
    body = {
        i: factory.row(Interaction, ids[i])["body"] for i in ("chat_old", "chat_new", "note_old", "note_new")
    }
    assert body == {
        "chat_old": None,
        "chat_new": "客户询问发票",
        "note_old": None,
        "note_new": "客户询问发票",
    }
    cases = {
        k: factory.row(DataSubjectRequest, ids[k]) for k in ("export_expired", "export_live", "case_ancient")
    }
    assert [cases[k]["export_body"] is None for k in cases] == [True, False, True]
    assert [cases[k]["details"] for k in cases] == ["text", "text", None]
    tokens = factory.conn.execute(select(AuthToken.token_hash)).scalars().all()
    assert tokens == ["token_new"]
    keys = factory.conn.execute(select(IdempotencyRecord.key)).scalars().all()
    assert keys == ["key_new"]
    (event,) = [e for e in db.info["audit"] if e.action == "purge"]
    assert event.actor_kind == "system"
    assert event.details["rules"]["inactive_customers"] == {"count": 1, "ids": [ids["inactive"]]}
    assert event.details["rules"]["auth_tokens"]["count"] == 2
    (erased,) = [e for e in db.info["audit"] if e.action == "erase"]
    assert erased.details["reason"] == "retention:inactive_customers"

    assert purge(db, now=NOW, settings=SETTINGS).total == 0  # nothing left to do


def test_periods_come_from_settings(factory: Factory, db: Session) -> None:
    ids = _arrange(factory)
    strict = Settings(
        secret_key="x" * 40,
        tune_gc=False,
        retention_interaction_months=3,
        retention_inactive_customer_years=10,
    )
    report = purge(db, now=NOW, dry_run=True, settings=strict)
    found = {r.rule: r.ids for r in report.results}
    assert found["inactive_customers"] == []
    assert found["interaction_bodies"] == sorted(
        [ids["chat_old"], ids["note_old"], ids["note_new"], ids["chat_new"]]
    )


def test_cli_purge_dry_run_then_real_run_is_audited(
    fresh_url: Callable[[], str], engines: Callable[[str], Engine]
) -> None:
    url = fresh_url()
    engine = engines(url)
    with engine.begin() as conn:
        f = Factory(conn)
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=4 * 365)
        cid = f.customer(display_name="Sleeper", created_at=long_ago, updated_at=long_ago)
    runner = CliRunner()
    dry = runner.invoke(cli, ["privacy", "purge", "--dry-run", "--url", url])
    assert dry.exit_code == 0, dry.output
    assert "would touch 1 record(s)" in dry.output
    real = runner.invoke(cli, ["privacy", "purge", "--json", "--url", url])
    assert real.exit_code == 0, real.output
    import json

    report = json.loads(real.output.strip().splitlines()[-1])
    counts = {r["rule"]: r["count"] for r in report["rules"]}
    assert counts["inactive_customers"] == 1 and sum(counts.values()) == 1
    with engine.connect() as conn:
        assert (
            conn.execute(select(Customer.display_name).where(Customer.id == cid)).scalar_one() == "[erased]"
        )
        (event,) = audit_rows(conn, "purge")
        assert event["details"]["rules"]["inactive_customers"]["ids"] == [cid]
    verify = runner.invoke(cli, ["audit", "verify", "--url", url])
    assert verify.exit_code == 0, verify.output
