"""Webhook subscriptions and delivery: a transactional outbox, signed posts, a delivery log.

An event (``customer.created``, ``customer.updated``) inserts one pending delivery per matching
active subscription in the same transaction as the change, so an event exists if and only if the
change was committed. :func:`deliver_pending` (``rapport webhooks deliver``) sends them outside any
transaction with :func:`rapport.security.outbound.safe_post`, which vets the URL again at send
time, and logs the outcome. Payloads carry ids only, never field values: receivers read the
record through the API with their own credentials, so masks and scopes apply there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import httpx
import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from rapport.db import Database
from rapport.models import WebhookDelivery, WebhookSubscription
from rapport.models.base import utcnow
from rapport.security import outbound

SIGNATURE_HEADER = "X-Rapport-Signature"
TIMESTAMP_HEADER = "X-Rapport-Timestamp"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def emit(session: Session, event: str, record_id: int) -> int:
    """Queue ``event`` for every active subscriber; returns how many deliveries were queued."""
    subs = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.events).where(WebhookSubscription.active.is_(True))
    ).all()
    rows = [
        {
            "subscription_id": s.id,
            "event": event,
            "record_id": str(record_id),
            "outcome": "pending",
            "attempted_at": utcnow(),
        }
        for s in subs
        if event in s.events
    ]
    if rows:
        session.execute(insert(WebhookDelivery), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    event: str
    record_id: str | None
    url: str
    secret: str
    queued_at: dt.datetime


def _attempt(p: _Pending, transport: httpx.BaseTransport | None) -> tuple[str, int | None, str | None]:
    body = orjson.dumps(
        {
            "id": p.id,
            "event": p.event,
            "customer_id": int(p.record_id) if p.record_id else None,
            "occurred_at": p.queued_at.isoformat(),
        }
    )
    timestamp = str(int(utcnow().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Rapport-Webhooks/1",
        "X-Rapport-Event": p.event,
        "X-Rapport-Delivery": str(p.id),
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(p.secret, timestamp, body),
    }
    try:
        r = outbound.safe_post(p.url, body, headers, transport=transport)
    except outbound.OutboundRefused as exc:
        return "refused", None, exc.detail[:500]
    except httpx.HTTPError as exc:
        return "failed", None, f"{type(exc).__name__}: {exc}"[:500]
    if 200 <= r.status_code < 300:
        return "delivered", r.status_code, None
    note = "redirect not followed" if 300 <= r.status_code < 400 else "receiver error"
    return "failed", r.status_code, note


def deliver_pending(
    database: Database, *, limit: int = 100, transport: httpx.BaseTransport | None = None
) -> dict[str, int]:
    """Send up to ``limit`` pending deliveries; no transaction is held while posting."""
    with database.unit(write=False) as session:
        pending = [
            _Pending(r.id, r.event, r.record_id, r.url, r.secret, r.attempted_at)
            for r in session.execute(
                select(
                    WebhookDelivery.id,
                    WebhookDelivery.event,
                    WebhookDelivery.record_id,
                    WebhookDelivery.attempted_at,
                    WebhookSubscription.url,
                    WebhookSubscription.secret,
                )
                .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                .where(WebhookDelivery.outcome == "pending", WebhookSubscription.active.is_(True))
                .order_by(WebhookDelivery.id)
                .limit(limit)
            ).all()
        ]
    counts = {"delivered": 0, "failed": 0, "refused": 0}
    for p in pending:
        outcome, status, error = _attempt(p, transport)
        counts[outcome] += 1
        with database.unit(write=True) as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == p.id, WebhookDelivery.outcome == "pending")
                .values(outcome=outcome, status_code=status, error=error, attempted_at=utcnow())
            )
    return counts
