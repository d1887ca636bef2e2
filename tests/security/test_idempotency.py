"""Idempotency-Key under real concurrency: one row, one id, replays marked, misuse refused."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine, func, select

from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database
from rapport.models import Customer, IdempotencyRecord
from tests.factories import Factory

CALLERS = 8


@pytest.fixture
def committed_auth(committed_db: Database) -> dict[str, str]:
    assert isinstance(committed_db.bind, Engine)
    with committed_db.bind.begin() as conn:
        factory = Factory(conn)
        team = factory.team()
        return factory.auth(factory.user("sales_rep", team))


def test_concurrent_duplicates_create_one_customer(
    settings: Settings, committed_db: Database, committed_auth: dict[str, str]
) -> None:
    app = create_app(settings, committed_db)
    body = {"display_name": "并发客户", "tags": ["dup"]}
    headers = {**committed_auth, "Idempotency-Key": "order-form-7f3a"}
    start = threading.Barrier(CALLERS, timeout=60)  # a caller that dies must not hang the rest

    def post(_: int) -> Response:
        with TestClient(app, raise_server_exceptions=False) as client:
            start.wait()  # release every caller at once so the requests really overlap
            return client.post("/api/v1/customers", json=body, headers=headers)

    with ThreadPoolExecutor(CALLERS) as pool:
        responses = list(pool.map(post, range(CALLERS)))

    assert [r.status_code for r in responses] == [201] * CALLERS, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    replayed = [r.headers.get("idempotent-replayed") for r in responses]
    assert replayed.count(None) == 1 and replayed.count("true") == CALLERS - 1
    assert {r.headers["etag"] for r in responses} == {f'"{ids.pop()}.1"'}
    with committed_db.unit(write=False) as session:
        count = session.execute(
            select(func.count()).select_from(Customer).where(Customer.display_name == "并发客户")
        ).scalar_one()
        keys = session.execute(select(func.count()).select_from(IdempotencyRecord)).scalar_one()
    assert count == 1
    assert keys == 1

    # The same key with a different body is a client bug, not a replay.
    with TestClient(app, raise_server_exceptions=False) as client:
        other = client.post("/api/v1/customers", json={"display_name": "别的客户"}, headers=headers)
        assert other.status_code == 422
        assert other.json()["errors"][0]["field"] == "Idempotency-Key"
        # A different key is a different request.
        fresh = client.post(
            "/api/v1/customers", json=body, headers={**committed_auth, "Idempotency-Key": "other-1"}
        )
        assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    with committed_db.unit(write=False) as session:
        names = session.execute(select(Customer.display_name).order_by(Customer.id)).scalars().all()
    assert names == ["并发客户", "并发客户"]


def test_idempotency_keys_are_per_caller(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    a, b = factory.auth(factory.user("sales_rep", team)), factory.auth(factory.user("sales_rep", team))
    body = {"display_name": "同键客户"}
    first = client.post("/api/v1/customers", json=body, headers={**a, "Idempotency-Key": "k-1"})
    second = client.post("/api/v1/customers", json=body, headers={**b, "Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in second.headers


@pytest.mark.parametrize("key", [b"", b"x" * 256, "naïve-key".encode(), b"tab\tkey"])
def test_malformed_idempotency_key_is_422(client: TestClient, factory: Factory, key: bytes) -> None:
    h: dict[str, str | bytes] = {**factory.auth(factory.user("sales_rep", factory.team()))}
    r = client.post("/api/v1/customers", json={"display_name": "键"}, headers={**h, "Idempotency-Key": key})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert factory.scalar(select(func.count()).select_from(Customer)) == 0
