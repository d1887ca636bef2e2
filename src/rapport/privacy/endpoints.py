"""Staff routes: consents and restriction of a customer, the sharing register, privacy complaints.

Every route goes through the data-access layer: the customer must be in the caller's scope (404
otherwise), the role must hold the privacy resource's action (403 otherwise), and every read and
write is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from rapport.access.policy import Action
from rapport.access.records import Records
from rapport.access.specs import CUSTOMER
from rapport.crud import RecordId, mount, problem_responses
from rapport.deps import CurrentPrincipal, DbSession, Recs
from rapport.errors import Forbidden
from rapport.http import JSON, expected_version, idempotent, json_record
from rapport.models.base import utcnow
from rapport.privacy import consent
from rapport.privacy.complaints import complaints
from rapport.privacy.schemas import (
    ComplaintList,
    ComplaintRead,
    ConsentEventRead,
    ConsentIn,
    ConsentOverview,
    PartnerIn,
    PartnerList,
    PartnerRead,
    ProvideIn,
    ProvisionRead,
    ResolveIn,
    RestrictionIn,
    RestrictionRead,
    WithdrawIn,
)
from rapport.privacy.sharing import PARTNERS, agreement_partner, agreements, provide

router = APIRouter()

CONSENT = "consent"


def _consent_grant(recs: Records, customer_id: int, action: Action) -> frozenset[str]:
    """404 unless the customer is in scope, then 403 unless the role may ``action`` consents."""
    recs.get(CUSTOMER, customer_id, audit_action=None)
    grant = recs.principal.grant(CONSENT)
    if not grant.allows(action):
        recs.audit(action.value, CONSENT, customer_id, outcome="denied")
        raise Forbidden(f"your role may not {action.value} consent records")
    return grant.hidden


def _masked(row: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in hidden}


@router.get(
    "/customers/{record_id}/consents",
    response_model=ConsentOverview,
    tags=["consents"],
    summary="Consent history and current state of a customer, and whether processing is restricted",
    operation_id="get_customer_consents",
    responses=problem_responses(401, 403, 404, 422),
)
def get_consents(record_id: RecordId, recs: Recs) -> Response:
    hidden = _consent_grant(recs, record_id, Action.read)
    out = consent.summary(recs.session, record_id, hidden)
    out["customer_id"] = record_id
    out["history"] = [_masked(e, hidden) for e in consent.history(recs.session, record_id)]
    recs.audit("read", CONSENT, record_id)
    return JSON(out)


def _event_out(event: Any, hidden: frozenset[str]) -> dict[str, Any]:
    row = {c: getattr(event, c) for c in ConsentEventRead.model_fields}
    return _masked(row, hidden)


@router.post(
    "/customers/{record_id}/consents",
    status_code=201,
    response_model=ConsentEventRead,
    tags=["consents"],
    summary="Record one consent decision for one purpose (several purposes: one request each)",
    operation_id="record_customer_consent",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def post_consent(
    record_id: RecordId,
    body: ConsentIn,
    request: Request,
    recs: Recs,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Response:
    def produce() -> Response:
        hidden = _consent_grant(recs, record_id, Action.create)
        event = consent.record_consent(
            db,
            record_id,
            body.purpose,
            granted=body.granted,
            source=body.source,
            evidence=body.evidence,
            actor=principal,
            partner_id=body.partner_id,
        )
        return JSON(_event_out(event, hidden), status_code=201)

    return idempotent(db, request, principal, body, produce)


@router.post(
    "/customers/{record_id}/consents/withdraw",
    status_code=201,
    response_model=ConsentEventRead,
    tags=["consents"],
    summary="Withdraw consent to one purpose; effective at once",
    operation_id="withdraw_customer_consent",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def post_withdraw(
    record_id: RecordId,
    body: WithdrawIn,
    request: Request,
    recs: Recs,
    db: DbSession,
    principal: CurrentPrincipal,
) -> Response:
    def produce() -> Response:
        hidden = _consent_grant(recs, record_id, Action.create)
        event = consent.withdraw(
            db,
            record_id,
            body.purpose,
            source=body.source,
            evidence=body.evidence,
            actor=principal,
            partner_id=body.partner_id,
        )
        return JSON(_event_out(event, hidden), status_code=201)

    return idempotent(db, request, principal, body, produce)


@router.post(
    "/customers/{record_id}/restriction",
    response_model=RestrictionRead,
    tags=["consents"],
    summary="Restrict (or lift the restriction of) all processing of a customer's data",
    operation_id="set_customer_restriction",
    responses=problem_responses(401, 403, 404, 413, 422),
)
def post_restriction(
    record_id: RecordId, body: RestrictionIn, recs: Recs, principal: CurrentPrincipal
) -> Response:
    hidden = _consent_grant(recs, record_id, Action.update)
    consent.set_restriction(
        recs.session, record_id, restricted=body.restricted, reason=body.reason, actor=principal
    )
    out = {"customer_id": record_id, "restricted": body.restricted, "reason": body.reason}
    return JSON(_masked(out, hidden))


# -- sharing register ----------------------------------------------------------------------------

AGREEMENT_RES = "sharing_agreement"


def _register_grant(recs: Records, action: Action) -> None:
    if not recs.principal.can(AGREEMENT_RES, action):
        recs.audit(action.value, "sharing_partner", None, outcome="denied")
        raise Forbidden(f"your role may not {action.value} the data-sharing register")


@router.get(
    "/sharing/partners",
    response_model=PartnerList,
    tags=["sharing"],
    summary="Organisations personal data may be provided to",
    operation_id="list_sharing_partners",
    responses=problem_responses(401, 403),
)
def list_partners(recs: Recs) -> Response:
    _register_grant(recs, Action.read)
    rows = recs.session.execute(select(PARTNERS).order_by(PARTNERS.c.id).limit(1000)).mappings()
    return JSON({"items": [dict(r) for r in rows]})


@router.post(
    "/sharing/partners",
    status_code=201,
    response_model=PartnerRead,
    tags=["sharing"],
    summary="Add a partner organisation to the register",
    operation_id="create_sharing_partner",
    responses=problem_responses(401, 403, 413, 422),
)
def create_partner(body: PartnerIn, recs: Recs) -> Response:
    _register_grant(recs, Action.create)
    now = utcnow()
    new_id = recs.session.execute(
        PARTNERS.insert()
        .values(name=body.name, country=body.country, created_at=now, updated_at=now, version=1)
        .returning(PARTNERS.c.id)
    ).scalar_one()
    recs.audit("create", "sharing_partner", new_id, fields=["name", "country"])
    row = recs.session.execute(select(PARTNERS).where(PARTNERS.c.id == new_id)).mappings().one()
    return json_record(dict(row), 201)


mount(router, agreements)


@router.post(
    "/sharing/agreements/{record_id}/provide",
    response_model=ProvisionRead,
    tags=["sharing"],
    summary="Provide the agreed categories of consenting customers to the agreement's partner (logged)",
    operation_id="provide_under_agreement",
    responses=problem_responses(401, 403, 404, 409, 413, 422),
)
def provide_under_agreement(record_id: RecordId, body: ProvideIn, recs: Recs) -> Response:
    partner_id = agreement_partner(recs, record_id)
    result = provide(
        recs.session,
        partner_id,
        body.customer_ids,
        body.categories,
        body.purpose,
        recs.principal,
        agreement_id=record_id,
        recs=recs,
    )
    return JSON(
        {
            "provision_id": result.provision_id,
            "agreement_id": result.agreement_id,
            "partner_id": result.partner_id,
            "purpose": result.purpose,
            "categories": result.categories,
            "customers": result.customers,
        },
        headers={"Cache-Control": "no-store"},
    )


# -- complaints ------------------------------------------------------------------------------------


@router.get(
    "/privacy-complaints/overdue",
    response_model=ComplaintList,
    tags=["privacy-complaints"],
    summary="Open complaints past their acknowledgement or resolution deadline",
    operation_id="list_overdue_privacy_complaints",
    responses=problem_responses(401, 403, 422),
)
def overdue_complaints(recs: Recs, limit: Annotated[int, Query(ge=1, le=200)] = 200) -> Response:
    return JSON({"items": complaints.overdue(recs, limit=limit)})


mount(router, complaints)


@router.post(
    "/privacy-complaints/{record_id}/acknowledge",
    response_model=ComplaintRead,
    tags=["privacy-complaints"],
    summary="Acknowledge a complaint (send If-Match)",
    operation_id="acknowledge_privacy_complaint",
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
)
def acknowledge(record_id: RecordId, request: Request, recs: Recs) -> Response:
    version = expected_version(request, record_id)
    return json_record(complaints.transition(recs, record_id, version, "acknowledged"))


@router.post(
    "/privacy-complaints/{record_id}/resolve",
    response_model=ComplaintRead,
    tags=["privacy-complaints"],
    summary="Resolve a complaint with the answer given (send If-Match)",
    operation_id="resolve_privacy_complaint",
    responses=problem_responses(401, 403, 404, 409, 412, 413, 422, 428),
)
def resolve(record_id: RecordId, body: ResolveIn, request: Request, recs: Recs) -> Response:
    version = expected_version(request, record_id)
    return json_record(complaints.transition(recs, record_id, version, "resolved", body.resolution))
