"""Consent per purpose: append-only ledger, no bundles, immediate withdrawal, restriction, API scope."""

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
from rapport.errors import InvalidInput
from rapport.models import AuditEvent, ConsentEvent, ConsentState, ProcessingRestriction
from rapport.privacy import consent
from rapport.privacy.consent import Purpose
from tests.factories import Factory


def staff(user_id: int, role: Role = Role.admin, team_id: int | None = None) -> Principal:
    return Principal(
        user_id=user_id, username=f"u{user_id}", role=role, team_id=team_id, request_id="req-test-1"
    )


@pytest.fixture
def admin(factory: Factory) -> Principal:
    return staff(factory.user("admin"))


def grant(db: Session, cid: int, purpose: Purpose, actor: Principal, partner_id: int | None = None) -> Any:
    return consent.record_consent(
        db,
        cid,
        purpose,
        granted=True,
        source="web_form",
        evidence="form #1",
        actor=actor,
        partner_id=partner_id,
    )


# -- the ledger ------------------------------------------------------------------------------------


def test_ledger_refuses_update_and_delete(db: Session, factory: Factory, admin: Principal) -> None:
    cid = factory.customer()
    event = grant(db, cid, Purpose.marketing_email, admin)
    conn = db.connection()
    t = ConsentEvent.__table__
    for stmt in (
        update(t).where(t.c.id == event.id).values(granted=False),
        delete(t).where(t.c.id == event.id),
        delete(t),
    ):
        with pytest.raises(DBAPIError, match="append-only"), conn.begin_nested():
            conn.execute(stmt)
    assert conn.execute(select(t.c.granted).where(t.c.id == event.id)).scalar_one() is True


def test_withdrawal_appends_and_takes_effect_in_the_same_transaction(
    db: Session, factory: Factory, admin: Principal
) -> None:
    cid = factory.customer()
    grant(db, cid, Purpose.marketing_sms, admin)
    assert consent.may_use(db, cid, Purpose.marketing_sms) is True
    consent.withdraw(db, cid, Purpose.marketing_sms, source="phone", evidence=None, actor=admin)
    # No commit in between: the same session sees the withdrawal at once.
    assert consent.may_use(db, cid, Purpose.marketing_sms) is False
    history = consent.history(db, cid)
    assert [(e["purpose"], e["granted"], e["source"]) for e in history] == [
        ("marketing_sms", False, "phone"),
        ("marketing_sms", True, "web_form"),
    ]
    state = db.execute(select(ConsentState).where(ConsentState.customer_id == cid)).scalars().all()
    assert [(s.purpose, s.partner_key, s.granted, s.event_id) for s in state] == [
        ("marketing_sms", 0, False, history[0]["id"])
    ]
    events = db.info["audit"]
    assert [(e.action, e.resource, e.record_id, e.details["purpose"]) for e in events] == [
        ("consent_grant", "consent", str(cid), "marketing_sms"),
        ("consent_withdraw", "consent", str(cid), "marketing_sms"),
    ]


def test_purposes_are_independent_and_default_to_no(db: Session, factory: Factory, admin: Principal) -> None:
    cid = factory.customer()
    assert all(consent.may_use(db, cid, p) is False for p in Purpose if p not in consent.PARTNER_PURPOSES)
    grant(db, cid, Purpose.marketing_email, admin)
    assert consent.may_use(db, cid, Purpose.marketing_email) is True
    assert consent.may_use(db, cid, Purpose.profiling) is False
    assert consent.may_use(db, cid, Purpose.sensitive_processing) is False


@pytest.mark.parametrize(
    "bundle",
    [
        ["marketing_email", "third_party_sharing"],
        "marketing_email,profiling",
        ("sensitive_processing", "profiling"),
        "everything",
    ],
)
def test_a_bundle_of_purposes_cannot_be_recorded(
    db: Session, factory: Factory, admin: Principal, bundle: Any
) -> None:
    cid = factory.customer()
    with pytest.raises(InvalidInput, match="exactly one purpose"):
        consent.record_consent(db, cid, bundle, granted=True, source="web_form", evidence=None, actor=admin)
    assert consent.history(db, cid) == []


def test_third_party_and_cross_border_consent_name_one_partner(
    db: Session, factory: Factory, admin: Principal
) -> None:
    cid = factory.customer()
    a, b = factory.partner(), factory.partner()
    with pytest.raises(InvalidInput, match="names the partner"):
        grant(db, cid, Purpose.third_party_sharing, admin)
    with pytest.raises(InvalidInput, match="not given to a partner"):
        grant(db, cid, Purpose.marketing_email, admin, partner_id=a)
    with pytest.raises(InvalidInput, match="no sharing partner 99999"):
        grant(db, cid, Purpose.third_party_sharing, admin, partner_id=99999)
    grant(db, cid, Purpose.third_party_sharing, admin, partner_id=a)
    assert consent.may_use(db, cid, Purpose.third_party_sharing, partner_id=a) is True
    assert consent.may_use(db, cid, Purpose.third_party_sharing, partner_id=b) is False
    assert consent.may_use(db, cid, Purpose.third_party_sharing) is False
    # Sharing consent is not transfer-abroad consent: PIPL wants each separately.
    assert consent.may_use(db, cid, Purpose.cross_border_transfer, partner_id=a) is False


def test_restriction_blocks_every_purpose_until_lifted(
    db: Session, factory: Factory, admin: Principal
) -> None:
    cid = factory.customer()
    partner = factory.partner()
    grant(db, cid, Purpose.marketing_email, admin)
    grant(db, cid, Purpose.profiling, admin)
    grant(db, cid, Purpose.third_party_sharing, admin, partner_id=partner)
    consent.set_restriction(db, cid, restricted=True, reason="accuracy contested", actor=admin)
    assert consent.is_restricted(db, cid) is True
    assert consent.may_use(db, cid, Purpose.marketing_email) is False
    assert consent.may_use(db, cid, Purpose.profiling) is False
    assert consent.may_use(db, cid, Purpose.third_party_sharing, partner_id=partner) is False
    assert list(db.execute(consent.allowed_customer_ids(db, Purpose.profiling)).scalars()) == []
    consent.set_restriction(db, cid, restricted=False, reason="corrected", actor=admin)
    assert consent.may_use(db, cid, Purpose.profiling) is True
    row = db.execute(
        select(ProcessingRestriction).where(ProcessingRestriction.customer_id == cid)
    ).scalar_one()
    assert (row.restricted, row.reason, row.changed_by) == (False, "corrected", admin.user_id)


def test_allowed_customer_ids_now_and_at_a_past_instant(
    db: Session, factory: Factory, admin: Principal
) -> None:
    yes, withdrawn, never, restricted = (factory.customer() for _ in range(4))
    for cid in (yes, withdrawn, restricted):
        grant(db, cid, Purpose.profiling, admin)
    grant(db, never, Purpose.marketing_email, admin)
    before_withdrawal = dt.datetime.now(dt.UTC)
    consent.withdraw(db, withdrawn, Purpose.profiling, source="email", evidence=None, actor=admin)
    consent.set_restriction(db, restricted, restricted=True, reason="objection", actor=admin)
    ours = {yes, withdrawn, never, restricted}
    now_ids = set(db.execute(consent.allowed_customer_ids(db, Purpose.profiling)).scalars()) & ours
    assert now_ids == {yes}
    then = set(
        db.execute(consent.allowed_customer_ids(db, Purpose.profiling, at=before_withdrawal)).scalars()
    )
    assert then & ours == {yes, withdrawn}
    assert consent.may_use(db, withdrawn, Purpose.profiling, at=before_withdrawal) is True
    assert consent.may_use(db, withdrawn, Purpose.profiling) is False
    long_ago = before_withdrawal - dt.timedelta(days=1)
    assert consent.may_use(db, yes, Purpose.profiling, at=long_ago) is False


# -- API -------------------------------------------------------------------------------------------


def _audit(factory: Factory, action: str, record_id: int) -> list[Any]:
    return list(
        factory.conn.execute(
            select(AuditEvent.action, AuditEvent.outcome, AuditEvent.details).where(
                AuditEvent.resource == "consent",
                AuditEvent.record_id == str(record_id),
                AuditEvent.action == action,
            )
        )
    )


def test_api_records_one_purpose_and_refuses_bundles(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    cid = factory.customer(owner_id=rep, team_id=team)
    h = factory.auth(rep)
    url = f"/api/v1/customers/{cid}/consents"
    for body in (
        {"purposes": ["marketing_email", "profiling"], "granted": True, "source": "web_form"},
        {"purpose": ["marketing_email", "profiling"], "granted": True, "source": "web_form"},
        {"purpose": "marketing_email", "purposes": ["profiling"], "granted": True, "source": "web_form"},
        {"purpose": "all", "granted": True, "source": "web_form"},
    ):
        r = client.post(url, json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
    assert client.get(url, headers=h).json()["history"] == []

    r = client.post(
        url, json={"purpose": "marketing_email", "granted": True, "source": "web_form"}, headers=h
    )
    assert r.status_code == 201, r.text
    assert r.json()["purpose"] == "marketing_email" and r.json()["granted"] is True
    assert r.json()["actor_id"] == rep
    r = client.post(
        f"{url}/withdraw",
        json={"purpose": "marketing_email", "source": "phone", "evidence": "call 12"},
        headers=h,
    )
    assert r.status_code == 201 and r.json()["granted"] is False
    overview = client.get(url, headers=h).json()
    assert overview["current"] == [
        {
            "purpose": "marketing_email",
            "partner_id": None,
            "granted": False,
            "at": overview["current"][0]["at"],
            "event_id": r.json()["id"],
        }
    ]
    assert [(e["granted"], e["evidence"]) for e in overview["history"]] == [(False, "call 12"), (True, None)]
    assert [a[0] for a in _audit(factory, "consent_grant", cid)] == ["consent_grant"]
    assert [a[0] for a in _audit(factory, "consent_withdraw", cid)] == ["consent_withdraw"]
    assert [a[:2] for a in _audit(factory, "read", cid)] == [("read", "ok"), ("read", "ok")]


def test_api_scope_roles_and_masks(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    analyst = factory.user("data_analyst", east)
    theirs = factory.customer(owner_id=factory.user("sales_rep", north), team_id=north)
    ours = factory.customer(owner_id=rep, team_id=east)
    body = {"purpose": "profiling", "granted": True, "source": "paper_form", "evidence": "scan 7"}
    # Another team's customer: 404, as on every record route, and nothing recorded.
    r = client.post(f"/api/v1/customers/{theirs}/consents", json=body, headers=factory.auth(rep))
    assert r.status_code == 404
    # Sales may record consent but not restrict processing.
    r = client.post(
        f"/api/v1/customers/{ours}/restriction",
        json={"restricted": True, "reason": "asked"},
        headers=factory.auth(rep),
    )
    assert r.status_code == 403
    assert _audit(factory, "update", ours)[0][1] == "denied"
    assert (
        client.post(f"/api/v1/customers/{ours}/consents", json=body, headers=factory.auth(rep)).status_code
        == 201
    )
    # Analysts read consent state (for profiling) but never the evidence, and record nothing.
    ha = factory.auth(analyst)
    got = client.get(f"/api/v1/customers/{ours}/consents", headers=ha).json()
    assert [e["purpose"] for e in got["history"]] == ["profiling"]
    assert "evidence" not in got["history"][0]
    assert client.post(f"/api/v1/customers/{ours}/consents", json=body, headers=ha).status_code == 403


def test_restriction_api_and_customer_360(client: TestClient, factory: Factory) -> None:
    admin = factory.user("admin")
    h = factory.auth(admin)
    cid = factory.customer()
    client.post(
        f"/api/v1/customers/{cid}/consents",
        json={"purpose": "marketing_wechat", "granted": True, "source": "in_person"},
        headers=h,
    )
    r = client.post(
        f"/api/v1/customers/{cid}/restriction", json={"restricted": True, "reason": "disputed"}, headers=h
    )
    assert r.status_code == 200 and r.json() == {"customer_id": cid, "restricted": True, "reason": "disputed"}
    view = client.get(f"/api/v1/customers/{cid}/360", headers=h).json()
    assert view["consents"]["restricted"] is True
    assert view["consents"]["restriction_reason"] == "disputed"
    assert [(c["purpose"], c["granted"]) for c in view["consents"]["current"]] == [("marketing_wechat", True)]
    # Analysts see the flag (profiling must stop) but not the staff-typed reason.
    analyst = factory.user("data_analyst")
    view = client.get(f"/api/v1/customers/{cid}/360", headers=factory.auth(analyst)).json()
    assert view["consents"]["restricted"] is True and "restriction_reason" not in view["consents"]


def test_partner_purpose_api_needs_a_real_partner(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("admin"))
    cid = factory.customer()
    url = f"/api/v1/customers/{cid}/consents"
    r = client.post(
        url, json={"purpose": "third_party_sharing", "granted": True, "source": "web_form"}, headers=h
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "partner_id"
    r = client.post(
        url,
        json={"purpose": "third_party_sharing", "granted": True, "source": "web_form", "partner_id": 424242},
        headers=h,
    )
    assert r.status_code == 422 and "no sharing partner" in r.json()["detail"]


def test_consent_text_fields_refuse_control_characters_and_blanks(
    client: TestClient, factory: Factory
) -> None:
    h = factory.auth(factory.user("admin"))
    cid = factory.customer()
    for evidence in ("form\x00#1", "   "):
        r = client.post(
            f"/api/v1/customers/{cid}/consents",
            json={"purpose": "profiling", "granted": True, "source": "web_form", "evidence": evidence},
            headers=h,
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "evidence", r.text
    r = client.post(
        f"/api/v1/customers/{cid}/restriction", json={"restricted": True, "reason": " "}, headers=h
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
