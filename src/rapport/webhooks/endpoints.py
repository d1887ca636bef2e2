"""Webhook subscriptions (administrators): the URL is vetted on create and again on every send."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import delete, insert, select

from rapport.access.policy import Action
from rapport.access.records import Records
from rapport.crud import RecordId, problem_responses
from rapport.deps import Recs
from rapport.errors import Forbidden, NotFound
from rapport.http import JSON
from rapport.models import WebhookDelivery, WebhookSubscription
from rapport.models.base import utcnow
from rapport.security import outbound
from rapport.webhooks.schemas import DeliveryOut, WebhookCreated, WebhookIn, WebhookOut
from rapport.webhooks.service import new_secret

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _allow(recs: Records, action: Action) -> None:
    if not recs.principal.can("webhook", action):
        recs.audit(action.value, "webhook", None, outcome="denied")
        raise Forbidden(f"your role may not {action.value} webhooks")


def _out(s: WebhookSubscription) -> dict[str, object]:
    return {
        "id": s.id,
        "url": s.url,
        "events": s.events,
        "active": s.active,
        "created_at": s.created_at,
        "version": s.version,
    }


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Subscribe a receiver to record events (administrators)",
    operation_id="create_webhook",
    responses=problem_responses(401, 403, 422),
)
def create_webhook(body: WebhookIn, recs: Recs) -> Response:
    _allow(recs, Action.create)
    outbound.check_url(body.url)
    secret, now = new_secret(), utcnow()
    new_id = recs.session.execute(
        insert(WebhookSubscription)
        .values(
            url=body.url,
            events=sorted(set(body.events)),
            secret=secret,
            active=body.active,
            created_at=now,
            updated_at=now,
            version=1,
        )
        .returning(WebhookSubscription.id)
    ).scalar_one()
    recs.audit("create", "webhook", new_id, fields=["url", "events", "active"])
    sub = recs.session.execute(
        select(WebhookSubscription).where(WebhookSubscription.id == new_id)
    ).scalar_one()
    return JSON({**_out(sub), "secret": secret}, status_code=201)


@router.get(
    "",
    response_model=list[WebhookOut],
    summary="List webhook subscriptions (administrators)",
    operation_id="list_webhooks",
    responses=problem_responses(401, 403),
)
def list_webhooks(recs: Recs) -> Response:
    _allow(recs, Action.read)
    subs = recs.session.execute(select(WebhookSubscription).order_by(WebhookSubscription.id)).scalars()
    return JSON([_out(s) for s in subs])


@router.delete(
    "/{record_id}",
    status_code=204,
    summary="Delete a webhook subscription and its delivery log (administrators)",
    operation_id="delete_webhook",
    responses=problem_responses(401, 403, 404, 422),
)
def delete_webhook(record_id: RecordId, recs: Recs) -> Response:
    _allow(recs, Action.delete)
    done = recs.session.execute(
        delete(WebhookSubscription).where(WebhookSubscription.id == record_id)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        raise NotFound(f"webhook {record_id} not found")
    recs.audit("delete", "webhook", record_id)
    return Response(status_code=204)


@router.get(
    "/{record_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="The delivery log of a subscription, newest first (administrators)",
    operation_id="list_webhook_deliveries",
    responses=problem_responses(401, 403, 404, 422),
)
def list_deliveries(record_id: RecordId, recs: Recs) -> Response:
    _allow(recs, Action.read)
    if (
        recs.session.execute(
            select(WebhookSubscription.id).where(WebhookSubscription.id == record_id)
        ).first()
        is None
    ):
        raise NotFound(f"webhook {record_id} not found")
    rows = recs.session.execute(
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == record_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(200)
    ).scalars()
    return JSON(
        [
            {
                "id": d.id,
                "event": d.event,
                "record_id": d.record_id,
                "outcome": d.outcome,
                "status_code": d.status_code,
                "error": d.error,
                "attempted_at": d.attempted_at,
            }
            for d in rows
        ]
    )
