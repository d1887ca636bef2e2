from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from rapport.auth.service import prune_tokens
from rapport.cli.main import app as cli
from rapport.http import IDEMPOTENCY_TTL, prune_idempotency
from rapport.models import AuditEvent, AuthToken, Customer, IdempotencyRecord
from rapport.models.base import utcnow
from tests.demo.conftest import engines, fresh_url
from tests.factories import Factory

__all__ = ["engines", "fresh_url"]


def test_an_idempotency_key_is_forgotten_after_its_ttl(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    h = {**factory.auth(rep), "Idempotency-Key": "order-77"}
    first = client.post("/api/v1/customers", json={"display_name": "钱七"}, headers=h)
    assert first.status_code == 201
    assert client.post("/api/v1/customers", json={"display_name": "孙八"}, headers=h).status_code == 422
    factory.conn.execute(
        update(IdempotencyRecord).values(created_at=utcnow() - IDEMPOTENCY_TTL - dt.timedelta(minutes=1))
    )
    again = client.post("/api/v1/customers", json={"display_name": "孙八"}, headers=h)
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]
    names = factory.conn.execute(select(Customer.display_name).order_by(Customer.id)).scalars().all()
    assert names[-2:] == ["钱七", "孙八"]


def test_prune_removes_only_what_is_past_its_time(factory: Factory, db: Session) -> None:
    now = utcnow()
    user = factory.user("sales_rep", factory.team())
    factory.conn.execute(
        insert(IdempotencyRecord),
        [
            {
                "owner": "user:1",
                "key": "old",
                "method": "POST",
                "path": "/x",
                "body_hash": "h",
                "created_at": now - IDEMPOTENCY_TTL - dt.timedelta(seconds=1),
            },
            {
                "owner": "user:1",
                "key": "new",
                "method": "POST",
                "path": "/x",
                "body_hash": "h",
                "created_at": now - dt.timedelta(hours=1),
            },
        ],
    )
    tokens = [
        ("expired-long-ago", now - dt.timedelta(days=40), None),
        ("revoked-long-ago", now + dt.timedelta(days=1), now - dt.timedelta(days=40)),
        ("revoked-recently", now + dt.timedelta(days=1), now - dt.timedelta(days=2)),
        ("live", now + dt.timedelta(days=1), None),
    ]
    for digest, expires, revoked in tokens:
        factory.conn.execute(
            insert(AuthToken).values(
                token_hash=digest,
                kind="refresh",
                user_id=user,
                family="f",
                created_at=now - dt.timedelta(days=50),
                expires_at=expires,
                revoked_at=revoked,
            )
        )
    assert prune_idempotency(db) == 1
    assert prune_tokens(db, dt.timedelta(days=30)) == 2
    left = factory.conn.execute(select(AuthToken.token_hash).order_by(AuthToken.token_hash)).scalars().all()
    assert left == ["live", "revoked-recently"]
    assert factory.conn.execute(select(IdempotencyRecord.key)).scalars().all() == ["new"]


def test_cli_prune_reports_and_audits(fresh_url: Callable[[], str], engines: Callable[[str], Engine]) -> None:
    url = fresh_url()
    result = CliRunner().invoke(cli, ["db", "prune"], env={"RAPPORT_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "removed 0 expired idempotency keys and 0 old tokens"
    with engines(url).connect() as conn:
        event = conn.execute(select(AuditEvent.action, AuditEvent.details)).one()
        assert event.action == "prune"
        assert event.details == {"idempotency_keys": 0, "tokens": 0}
        assert conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one() == 1
