"""The data-sharing register and the provision gate."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rapport.access.policy import Role
from rapport.access.principal import Principal
from rapport.models import AuditEvent, ProvisionLog
from rapport.privacy import consent
from rapport.privacy.consent import Purpose
from rapport.privacy.sharing import ConsentMissing, SharingNotCovered, provide
from tests.factories import Factory

NOW = dt.datetime.now(dt.UTC)


def admin_principal(factory: Factory) -> Principal:
    return Principal(
        user_id=factory.user("admin"), username="a", role=Role.admin, team_id=None, request_id="r-1"
    )


def agree(db: Session, cid: int, purpose: Purpose, actor: Principal, partner_id: int | None = None) -> None:
    consent.record_consent(
        db, cid, purpose, granted=True, source="paper_form", evidence=None, actor=actor, partner_id=partner_id
    )


def provisions(factory: Factory) -> list[Any]:
    return list(factory.conn.execute(select(ProvisionLog).order_by(ProvisionLog.id)).mappings())


def test_provision_refused_without_an_agreement(db: Session, factory: Factory) -> None:
    actor = admin_principal(factory)
    partner = factory.partner()
    cid = factory.customer()
    agree(db, cid, Purpose.third_party_sharing, actor, partner)
    with pytest.raises(SharingNotCovered) as exc:
        provide(db, partner, [cid], ["identity"], "marketing", actor)
    assert exc.value.status == 409 and exc.value.extra["uncovered_categories"] == ["identity"]
    assert provisions(factory) == []


def test_provision_refused_under_an_expired_or_future_agreement(db: Session, factory: Factory) -> None:
    actor = admin_principal(factory)
    partner = factory.partner()
    cid = factory.customer()
    agree(db, cid, Purpose.third_party_sharing, actor, partner)
    expired = factory.agreement(
        partner, valid_from=NOW - dt.timedelta(days=400), valid_until=NOW - dt.timedelta(days=1)
    )
    future = factory.agreement(
        partner, valid_from=NOW + dt.timedelta(days=1), valid_until=NOW + dt.timedelta(days=9)
    )
    for agreement in (expired, future, None):
        with pytest.raises(SharingNotCovered, match="not in force"):
            provide(db, partner, [cid], ["identity"], "marketing", actor, agreement_id=agreement)
    assert provisions(factory) == []


def test_provision_refused_for_uncovered_purpose_or_categories(db: Session, factory: Factory) -> None:
    actor = admin_principal(factory)
    partner = factory.partner()
    factory.agreement(partner, purposes=["marketing"], data_categories=["identity", "contact"])
    cid = factory.customer()
    agree(db, cid, Purpose.third_party_sharing, actor, partner)
    with pytest.raises(SharingNotCovered) as exc:
        provide(db, partner, [cid], ["identity", "financial", "behavioural"], "marketing", actor)
    assert exc.value.extra == {"uncovered_categories": ["behavioural", "financial"], "purpose_covered": True}
    with pytest.raises(SharingNotCovered, match="the purpose profiling") as exc:
        provide(db, partner, [cid], ["identity"], "profiling", actor)
    assert exc.value.extra["purpose_covered"] is False


def test_provision_refused_without_consent_lists_the_customers(db: Session, factory: Factory) -> None:
    actor = admin_principal(factory)
    partner, other = factory.partner(), factory.partner()
    factory.agreement(partner)
    ok, none_at_all, wrong_partner, withdrawn = (factory.customer() for _ in range(4))
    agree(db, ok, Purpose.third_party_sharing, actor, partner)
    agree(db, wrong_partner, Purpose.third_party_sharing, actor, other)
    agree(db, withdrawn, Purpose.third_party_sharing, actor, partner)
    consent.withdraw(
        db,
        withdrawn,
        Purpose.third_party_sharing,
        source="email",
        evidence=None,
        actor=actor,
        partner_id=partner,
    )
    with pytest.raises(ConsentMissing) as exc:
        provide(db, partner, [ok, none_at_all, wrong_partner, withdrawn], ["identity"], "marketing", actor)
    assert exc.value.status == 403
    assert exc.value.extra["customers"] == [
        {"customer_id": none_at_all, "missing": ["third_party_sharing"]},
        {"customer_id": wrong_partner, "missing": ["third_party_sharing"]},
        {"customer_id": withdrawn, "missing": ["third_party_sharing"]},
    ]
    denied = [e for e in db.info["audit"] if e.outcome == "denied"]
    assert [e.details["refused_ids"] for e in denied] == [[none_at_all, wrong_partner, withdrawn]]
    assert provisions(factory) == []


def test_cross_border_needs_separate_cross_border_consent(db: Session, factory: Factory) -> None:
    actor = admin_principal(factory)
    partner = factory.partner(country="SG")
    factory.agreement(
        partner, cross_border=True, transfer_mechanism="standard_contract", destination_country="SG"
    )
    cid = factory.customer()
    agree(db, cid, Purpose.third_party_sharing, actor, partner)
    with pytest.raises(ConsentMissing) as exc:
        provide(db, partner, [cid], ["identity"], "marketing", actor)
    assert exc.value.extra["customers"] == [{"customer_id": cid, "missing": ["cross_border_transfer"]}]
    agree(db, cid, Purpose.cross_border_transfer, actor, partner)
    done = provide(db, partner, [cid], ["identity"], "marketing", actor)
    assert [c["id"] for c in done.customers] == [cid]


def test_sensitive_categories_need_sensitive_processing_consent(db: Session, factory: Factory) -> None:
    actor = admin_principal(factory)
    partner = factory.partner()
    factory.agreement(partner, data_categories=["identity", "sensitive"])
    cid = factory.customer()
    agree(db, cid, Purpose.third_party_sharing, actor, partner)
    with pytest.raises(ConsentMissing) as exc:
        provide(db, partner, [cid], ["identity", "sensitive"], "marketing", actor)
    assert exc.value.extra["customers"] == [{"customer_id": cid, "missing": ["sensitive_processing"]}]


def test_restricted_customer_cannot_be_provided(db: Session, factory: Factory) -> None:
    actor = admin_principal(factory)
    partner = factory.partner()
    factory.agreement(partner)
    cid = factory.customer()
    agree(db, cid, Purpose.third_party_sharing, actor, partner)
    consent.set_restriction(db, cid, restricted=True, reason="objection", actor=actor)
    with pytest.raises(ConsentMissing):
        provide(db, partner, [cid], ["identity"], "marketing", actor)


def test_provision_is_logged_append_only_and_exports_only_agreed_categories(
    db: Session, factory: Factory
) -> None:
    actor = admin_principal(factory)
    partner = factory.partner()
    agreement = factory.agreement(partner)
    cid = factory.customer(display_name="王小明", city="上海", gender="male")
    factory.contact(cid, kind="email", value="wxm@example.com")
    factory.order(cid)
    agree(db, cid, Purpose.third_party_sharing, actor, partner)
    done = provide(db, partner, [cid], ["identity", "contact"], "marketing", actor)
    (row,) = done.customers
    assert row["id"] == cid and row["display_name"] == "王小明"
    assert row["contact_points"] == [
        {
            "kind": "email",
            "value": "wxm@example.com",
            "value_normalized": "wxm@example.com",
            "district": None,
            "postal_code": None,
        }
    ]
    # Demographics and purchases were not asked for and not agreed: they are not in the export.
    assert "city" not in row and "gender" not in row and "total_amount" not in row
    (log,) = provisions(factory)
    assert (
        log["agreement_id"],
        log["partner_id"],
        log["purpose"],
        log["categories"],
        log["customer_ids"],
    ) == (
        agreement,
        partner,
        "marketing",
        ["contact", "identity"],
        [str(cid)],
    )
    assert log["actor_id"] == actor.user_id and log["customer_count"] == 1
    ok = [e for e in db.info["audit"] if e.action == "provide" and e.outcome == "ok"]
    assert [(e.record_id, e.details["ids"], e.details["provision_id"]) for e in ok] == [
        (str(agreement), [cid], done.provision_id)
    ]
    conn = db.connection()
    t = ProvisionLog.__table__
    for stmt in (update(t).values(purpose="service"), delete(t)):
        with pytest.raises(DBAPIError, match="append-only"), conn.begin_nested():
            conn.execute(stmt)


# -- API -------------------------------------------------------------------------------------------


def test_register_crud_and_validation(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("admin"))
    partner = client.post(
        "/api/v1/sharing/partners", json={"name": "云仓物流", "country": "CN"}, headers=h
    ).json()
    start = NOW.isoformat()
    end = (NOW + dt.timedelta(days=365)).isoformat()
    body = {
        "partner_id": partner["id"],
        "title": "Delivery",
        "purposes": ["service"],
        "data_categories": ["identity", "contact"],
        "legal_basis": "contract",
        "valid_from": start,
        "valid_until": end,
        "impact_assessment_ref": "PIA-7",
    }
    r = client.post("/api/v1/sharing/agreements", json=body, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["purposes"], created["data_categories"], created["cross_border"]) == (
        ["service"],
        ["identity", "contact"],
        False,
    )
    bad = client.post("/api/v1/sharing/agreements", json={**body, "cross_border": True}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "transfer_mechanism"
    bad = client.post("/api/v1/sharing/agreements", json={**body, "valid_until": start}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "valid_until"
    bad = client.post("/api/v1/sharing/agreements", json={**body, "data_categories": ["gossip"]}, headers=h)
    assert bad.status_code == 422
    r = client.patch(
        f"/api/v1/sharing/agreements/{created['id']}",
        json={"data_categories": ["identity"]},
        headers={**h, "If-Match": f'"{created["id"]}.1"'},
    )
    assert r.status_code == 200 and r.json()["data_categories"] == ["identity"]
    listed = client.get(f"/api/v1/sharing/agreements?partner_id={partner['id']}", headers=h).json()
    assert [a["id"] for a in listed["items"]] == [created["id"]]
    # Sales reps do not see the register at all.
    rep = factory.auth(factory.user("sales_rep", factory.team()))
    assert client.get("/api/v1/sharing/agreements", headers=rep).status_code == 403


def test_provide_endpoint(client: TestClient, factory: Factory) -> None:
    specialist = factory.user("crm_specialist", factory.team())
    h = factory.auth(specialist)
    partner = factory.partner()
    agreement = factory.agreement(partner)
    yes, no = factory.customer(display_name="甲"), factory.customer(display_name="乙")
    factory.contact(yes, kind="email", value="jia@example.com")
    admin = factory.auth(factory.user("admin"))
    r = client.post(
        f"/api/v1/customers/{yes}/consents",
        json={"purpose": "third_party_sharing", "granted": True, "source": "web_form", "partner_id": partner},
        headers=admin,
    )
    assert r.status_code == 201
    url = f"/api/v1/sharing/agreements/{agreement}/provide"
    r = client.post(
        url, json={"customer_ids": [yes, no], "categories": ["identity"], "purpose": "marketing"}, headers=h
    )
    assert r.status_code == 403 and r.json()["type"].endswith("/consent-missing")
    assert r.json()["customers"] == [{"customer_id": no, "missing": ["third_party_sharing"]}]
    r = client.post(
        url, json={"customer_ids": [yes], "categories": ["financial"], "purpose": "marketing"}, headers=h
    )
    assert r.status_code == 409 and r.json()["uncovered_categories"] == ["financial"]
    r = client.post(
        url, json={"customer_ids": [yes], "categories": ["identity"], "purpose": "marketing"}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    out = r.json()
    assert [(c["id"], c["display_name"]) for c in out["customers"]] == [(yes, "甲")]
    assert (out["agreement_id"], out["partner_id"], out["categories"]) == (agreement, partner, ["identity"])
    assert len(provisions(factory)) == 1
    audit = list(
        factory.conn.execute(
            select(AuditEvent.outcome, AuditEvent.details)
            .where(AuditEvent.resource == "sharing_agreement", AuditEvent.action == "provide")
            .order_by(AuditEvent.seq)
        )
    )
    assert [a[0] for a in audit] == ["denied", "denied", "ok"]
    # A customer outside the caller's scope is 404, as everywhere.
    rep = factory.user("sales_rep", factory.team())
    r = client.post(
        url,
        json={"customer_ids": [yes], "categories": ["identity"], "purpose": "marketing"},
        headers=factory.auth(rep),
    )
    assert r.status_code == 404  # sales reps cannot read the register, so the agreement itself is not found
