"""Webhook subscriptions: administrators only, URLs vetted on create and at send, signed deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select

from rapport.db import Database
from rapport.models import AuditEvent, WebhookDelivery
from rapport.security import outbound
from rapport.webhooks.service import deliver_pending
from tests.factories import Factory

PUBLIC_IP = "93.184.216.34"


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    answers = {"hooks.example.com": [PUBLIC_IP], "intranet.example.com": ["10.0.0.7"]}
    monkeypatch.setattr(outbound, "resolve_host", lambda host, port: answers[host])
    return answers


@pytest.fixture
def admin(factory: Factory) -> dict[str, str]:
    return factory.auth(factory.user("admin"))


def _subscribe(
    client: TestClient, headers: dict[str, str], url: str = "https://hooks.example.com/rapport"
) -> dict:  # type: ignore[type-arg]
    r = client.post(
        "/api/v1/webhooks",
        json={"url": url, "events": ["customer.created", "customer.updated"]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body: dict = r.json()  # type: ignore[type-arg]
    return body


def test_only_administrators_manage_webhooks(client: TestClient, factory: Factory) -> None:
    for role in ("team_lead", "crm_specialist", "sales_rep", "service_rep", "data_analyst"):
        h = factory.auth(factory.user(role))
        assert client.get("/api/v1/webhooks", headers=h).status_code == 403, role
        r = client.post(
            "/api/v1/webhooks",
            json={"url": "https://hooks.example.com/x", "events": ["customer.created"]},
            headers=h,
        )
        assert r.status_code == 403, role


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/api",
        "https://intranet.example.com/hook",
        "http://0x7f.1/",
        "file:///etc/passwd",
    ],
)
def test_create_refuses_internal_urls(client: TestClient, admin: dict[str, str], url: str) -> None:
    r = client.post("/api/v1/webhooks", json={"url": url, "events": ["customer.created"]}, headers=admin)
    assert r.status_code == 422
    problem = r.json()
    assert problem["type"].endswith("/outbound-url-refused") and problem["errors"][0]["field"] == "url"


def test_create_list_delete(client: TestClient, admin: dict[str, str], connection: Connection) -> None:
    created = _subscribe(client, admin)
    assert created["secret"].startswith("whsec_") and created["events"] == [
        "customer.created",
        "customer.updated",
    ]
    listed = client.get("/api/v1/webhooks", headers=admin).json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    assert client.delete(f"/api/v1/webhooks/{created['id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/webhooks", headers=admin).json() == []
    assert client.delete(f"/api/v1/webhooks/{created['id']}", headers=admin).status_code == 404
    actions = connection.execute(select(AuditEvent.action).where(AuditEvent.resource == "webhook")).scalars()
    assert list(actions) == ["create", "delete"]


def test_customer_events_are_delivered_signed_with_ids_only(
    client: TestClient, factory: Factory, admin: dict[str, str], database: Database, connection: Connection
) -> None:
    sub = _subscribe(client, admin)
    team = factory.team()
    rep = factory.auth(factory.user("sales_rep", team))
    r = client.post("/api/v1/customers", json={"display_name": "王小明"}, headers=rep)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = client.patch(
        f"/api/v1/customers/{cid}",
        json={"occupation": "教师"},
        headers={**rep, "If-Match": r.headers["etag"]},
    )
    assert r.status_code == 200, r.text

    received: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    counts = deliver_pending(database, transport=httpx.MockTransport(receiver))
    assert counts == {"delivered": 2, "failed": 0, "refused": 0}
    events = []
    for req in received:
        assert req.url.host == PUBLIC_IP and req.headers["host"] == "hooks.example.com"
        ts, body = req.headers["x-rapport-timestamp"], req.content
        expected = hmac.new(sub["secret"].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert req.headers["x-rapport-signature"] == f"sha256={expected}"
        payload = json.loads(body)
        assert set(payload) == {"id", "event", "customer_id", "occurred_at"}  # no names, no values
        assert "王小明".encode() not in body
        events.append((payload["event"], payload["customer_id"]))
    assert events == [("customer.created", cid), ("customer.updated", cid)]
    log = client.get(f"/api/v1/webhooks/{sub['id']}/deliveries", headers=admin).json()
    assert [(d["event"], d["outcome"], d["status_code"]) for d in log] == [
        ("customer.updated", "delivered", 200),
        ("customer.created", "delivered", 200),
    ]
    # Nothing is sent twice.
    assert deliver_pending(database, transport=httpx.MockTransport(receiver)) == {
        "delivered": 0,
        "failed": 0,
        "refused": 0,
    }


def test_url_is_checked_again_at_send_time(
    client: TestClient,
    factory: Factory,
    admin: dict[str, str],
    database: Database,
    dns: dict[str, list[str]],
    connection: Connection,
) -> None:
    _subscribe(client, admin)
    client.post(
        "/api/v1/customers", json={"display_name": "李雷"}, headers=factory.auth(factory.user("admin"))
    )
    dns["hooks.example.com"] = ["169.254.169.254"]  # rebinding after the subscription was saved
    sent: list[httpx.Request] = []
    counts = deliver_pending(
        database, transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
    )
    assert counts == {"delivered": 0, "failed": 0, "refused": 1} and sent == []
    row = connection.execute(select(WebhookDelivery.outcome, WebhookDelivery.error)).one()
    assert row.outcome == "refused" and "169.254.169.254, which is link-local" in row.error


def test_redirecting_receiver_is_a_failure_not_followed(
    client: TestClient, factory: Factory, admin: dict[str, str], database: Database, connection: Connection
) -> None:
    _subscribe(client, admin)
    client.post("/api/v1/customers", json={"display_name": "韩梅梅"}, headers=admin)
    calls: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(307, headers={"Location": "http://127.0.0.1/admin"})

    assert deliver_pending(database, transport=httpx.MockTransport(receiver))["failed"] == 1
    assert len(calls) == 1
    row = connection.execute(
        select(WebhookDelivery.outcome, WebhookDelivery.status_code, WebhookDelivery.error)
    ).one()
    assert tuple(row) == ("failed", 307, "redirect not followed")


def test_inactive_or_unsubscribed_events_queue_nothing(
    client: TestClient, admin: dict[str, str], connection: Connection
) -> None:
    r = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/only-updates", "events": ["customer.updated"]},
        headers=admin,
    )
    assert r.status_code == 201
    client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example.com/off", "events": ["customer.created"], "active": False},
        headers=admin,
    )
    client.post("/api/v1/customers", json={"display_name": "张三"}, headers=admin)
    assert connection.execute(select(WebhookDelivery.id)).all() == []
