from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from rapport.access.principal import SYSTEM
from rapport.config import Settings
from rapport.errors import Conflict
from rapport.models import Customer, DataSubjectRequest
from rapport.privacy import consent
from rapport.privacy import requests as dsr
from rapport.privacy.common import records
from rapport.privacy.consent import Purpose
from rapport.privacy.requests import (
    Jurisdiction,
    RequestKind,
    RequestStatus,
    add_months,
    due_date,
    extended_due,
)
from tests.factories import Factory
from tests.privacy.helpers import plant_person

T0 = dt.datetime(2026, 1, 31, 9, 0, tzinfo=dt.UTC)
BASE = "/api/v1/privacy/requests"


def _settings(**kw: Any) -> Settings:
    return Settings(secret_key="x" * 40, tune_gc=False, **kw)


def test_legal_deadlines_per_jurisdiction() -> None:
    s = _settings()
    assert due_date(Jurisdiction.PIPL, T0, s) == dt.datetime(2026, 2, 15, 9, 0, tzinfo=dt.UTC)
    # One calendar month; 31 January has no 31 February, so the month's last day.
    assert due_date(Jurisdiction.GDPR, T0, s) == dt.datetime(2026, 2, 28, 9, 0, tzinfo=dt.UTC)
    assert extended_due(Jurisdiction.PIPL, dt.datetime(2026, 2, 15, tzinfo=dt.UTC), s) == dt.datetime(
        2026, 3, 2, tzinfo=dt.UTC
    )
    assert extended_due(Jurisdiction.GDPR, dt.datetime(2026, 2, 28, tzinfo=dt.UTC), s) == dt.datetime(
        2026, 4, 28, tzinfo=dt.UTC
    )
    assert add_months(dt.datetime(2026, 12, 15, tzinfo=dt.UTC), 1) == dt.datetime(2027, 1, 15, tzinfo=dt.UTC)
    assert add_months(dt.datetime(2028, 3, 31, tzinfo=dt.UTC), -1) == dt.datetime(2028, 2, 29, tzinfo=dt.UTC)
    custom = _settings(dsr_deadline_days_pipl=10, dsr_deadline_months_gdpr=2)
    assert due_date(Jurisdiction.PIPL, T0, custom) == T0 + dt.timedelta(days=10)
    assert due_date(Jurisdiction.GDPR, T0, custom) == dt.datetime(2026, 3, 31, 9, 0, tzinfo=dt.UTC)


def test_open_request_contract_and_one_extension(factory: Factory, db: Session) -> None:
    cid = factory.customer()
    case = dsr.open_request(
        db, cid, RequestKind.access, channel="email", details="请提供我的数据", actor=None, now=T0
    )
    assert isinstance(case, DataSubjectRequest)
    assert (case.status, case.jurisdiction, case.opened_by_id) == ("received", "PIPL", None)
    assert case.due_at == dt.datetime(2026, 2, 15, 9, 0, tzinfo=dt.UTC)
    recs = records(db, SYSTEM)
    row = dsr.extend(recs, case.id, reason="complex request", version=1, now=T0)
    assert row["due_at"] == dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    assert row["extension_reason"] == "complex request"
    with pytest.raises(Conflict, match="extended once already"):
        dsr.extend(recs, case.id, reason="again", version=None, now=T0)


def test_overdue_alert_goes_out_once_per_case_with_a_frozen_clock(
    factory: Factory, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = factory.customer()
    late = dsr.open_request(db, cid, RequestKind.delete, channel="web", details=None, actor=None, now=T0)
    later = T0 + dt.timedelta(days=10)
    dsr.open_request(db, cid, RequestKind.access, channel="web", details=None, actor=None, now=later)
    done = dsr.open_request(db, cid, RequestKind.correct, channel="web", details=None, actor=None, now=T0)
    recs = records(db, SYSTEM)
    dsr.transition(recs, done.id, RequestStatus.rejected, version=None, resolution="not the person", now=T0)
    seen: list[int] = []
    monkeypatch.setattr(dsr, "OVERDUE_HOOKS", [lambda session, row: seen.append(row["id"])])

    at = T0 + dt.timedelta(days=15, minutes=1)  # the first case's deadline passed a minute ago
    assert [r["id"] for r in dsr.overdue_rows(recs, at)] == [late.id]
    db.info.pop("audit", None)
    assert dsr.notify_overdue(db, at) == [late.id]
    assert seen == [late.id]
    (event,) = [e for e in db.info["audit"] if e.action == "overdue"]
    assert (event.resource, event.record_id) == ("data_subject_request", str(late.id))
    assert dsr.notify_overdue(db, at + dt.timedelta(hours=1)) == []
    assert seen == [late.id]


def _case(client: TestClient, headers: dict[str, str], cid: int, kind: str, **kw: Any) -> dict[str, Any]:
    r = client.post(BASE, json={"customer_id": cid, "kind": kind, "channel": "email", **kw}, headers=headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _move(
    client: TestClient, headers: dict[str, str], case_id: int, status: str, **kw: Any
) -> tuple[int, dict[str, Any]]:
    etag = client.get(f"{BASE}/{case_id}", headers=headers).headers["etag"]
    r = client.post(
        f"{BASE}/{case_id}/status", json={"status": status, **kw}, headers={**headers, "If-Match": etag}
    )
    return r.status_code, r.json()


def _complete(client: TestClient, headers: dict[str, str], case_id: int, **kw: Any) -> dict[str, Any]:
    for status in ("verified", "in_progress"):
        code, body = _move(client, headers, case_id, status)
        assert code == 200, body
    code, body = _move(client, headers, case_id, "completed", **kw)
    assert code == 200, body
    return body


def test_front_line_staff_open_cases_and_handlers_work_them(client: TestClient, factory: Factory) -> None:
    east, north = factory.team(), factory.team()
    rep = factory.user("sales_rep", east)
    cid = factory.customer(rep, east)
    elsewhere = factory.customer(None, north)
    rep_h = factory.auth(rep)
    opened = _case(client, rep_h, cid, "access", details="wants a copy")
    assert set(opened) == {"id", "customer_id", "kind", "status", "due_at"}
    assert opened["status"] == "received"
    # Opening for a customer out of scope looks like the customer does not exist.
    body = {"customer_id": elsewhere, "kind": "access", "channel": "email"}
    r = client.post(BASE, json=body, headers=rep_h)
    assert r.status_code == 422
    assert r.json()["detail"] == f"customer_id: no customer {elsewhere} that you can see"
    body["customer_id"] = 10**9
    assert client.post(BASE, json=body, headers=rep_h).json()["detail"].endswith("that you can see")
    # Reps open; they do not read or handle cases.
    assert client.get(f"{BASE}/{opened['id']}", headers=rep_h).status_code == 404
    assert client.get(BASE, headers=rep_h).status_code == 403
    analyst = factory.auth(factory.user("data_analyst", east))
    r = client.post(BASE, json={"customer_id": cid, "kind": "access", "channel": "email"}, headers=analyst)
    assert r.status_code == 403

    lead_north = factory.auth(factory.user("team_lead", north))
    assert client.get(f"{BASE}/{opened['id']}", headers=lead_north).status_code == 404
    assert client.get(BASE, headers=lead_north).json()["items"] == []
    lead_east = factory.auth(factory.user("team_lead", east))
    listed = client.get(BASE, params={"status": "received"}, headers=lead_east).json()["items"]
    assert [c["id"] for c in listed] == [opened["id"]]
    assert listed[0]["details"] == "wants a copy"


def test_workflow_order_rejection_reason_and_assignment(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    cid = factory.customer(None, team)
    h = factory.auth(factory.user("crm_specialist", team))
    case = _case(client, h, cid, "correct")
    code, body = _move(client, h, case["id"], "completed")
    assert (code, body["detail"]) == (409, "a received request cannot become completed")
    code, body = _move(client, h, case["id"], "rejected")
    assert code == 422 and body["errors"][0]["field"] == "resolution"
    etag = client.get(f"{BASE}/{case['id']}", headers=h).headers["etag"]
    rep = factory.user("sales_rep", team)
    r = client.post(
        f"{BASE}/{case['id']}/assignment", json={"assignee_id": rep}, headers={**h, "If-Match": etag}
    )
    assert r.status_code == 422
    handler = factory.user("crm_specialist", team)
    r = client.post(
        f"{BASE}/{case['id']}/assignment", json={"assignee_id": handler}, headers={**h, "If-Match": etag}
    )
    assert (r.status_code, r.json()["assignee_id"]) == (200, handler)
    r = client.post(
        f"{BASE}/{case['id']}/assignment", json={"assignee_id": handler}, headers={**h, "If-Match": etag}
    )
    assert r.status_code == 412  # the stale ETag
    code, body = _move(client, h, case["id"], "rejected", resolution="identity could not be verified")
    assert (code, body["status"], body["resolution"]) == (200, "rejected", "identity could not be verified")
    code, _ = _move(client, h, case["id"], "verified")
    assert code == 409


def test_completing_a_delete_request_erases_the_person(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    p = plant_person(factory, None, team)
    h = factory.auth(factory.user("crm_specialist", team))
    case = _case(client, h, p.customer_id, "delete", details=f"please delete 龙Q7X雪 ({p.tokens[3]})")
    body = _complete(client, h, case["id"])
    assert body["status"] == "completed"
    assert body["details"] is None  # the request's own free text went with the person
    assert body["resolution"] == "erased: 5 rows cleared or deleted besides the person's record"
    assert factory.row(Customer, p.customer_id)["display_name"] == "[erased]"
    assert client.get(f"/api/v1/customers/{p.customer_id}", headers=h).status_code == 404
    # The case itself stays visible as proof the request was answered.
    assert client.get(f"{BASE}/{case['id']}", headers=h).json()["status"] == "completed"
    verify = client.get("/api/v1/audit/verify", headers=factory.auth(factory.user("admin")))
    assert verify.json()["ok"] is True


def test_completing_an_access_request_produces_a_downloadable_export(
    client: TestClient, factory: Factory
) -> None:
    team = factory.team()
    p = plant_person(factory, None, team)
    h = factory.auth(factory.user("crm_specialist", team))
    case = _case(client, h, p.customer_id, "port")
    assert client.get(f"{BASE}/{case['id']}/export", headers=h).status_code == 404
    body = _complete(client, h, case["id"])
    assert body["resolution"] == "export produced"
    r = client.get(f"{BASE}/{case['id']}/export", headers=h)
    assert r.status_code == 200
    data = r.json()
    assert data["format"] == "rapport.customer-export/1"
    assert data["customer"]["display_name"] == "龙Q7X雪"
    assert sorted(c["value"] for c in data["contact_points"]) == ["+8613912345678", "zeta.q7x@example.org"]
    z = client.get(f"{BASE}/{case['id']}/export", params={"format": "csv"}, headers=h)
    assert z.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
    assert names == [f"{n}.csv" for n in dsr_sections()]
    assert (
        orjson.loads(factory.row(DataSubjectRequest, case["id"])["export_body"])["customer"]
        == data["customer"]
    )


def dsr_sections() -> list[str]:
    return ["customer", "tags", "contact_points", "interactions", "tasks", "orders", "order_lines"]


def test_restrict_and_withdraw_act_through_the_consent_ledger(
    client: TestClient, factory: Factory, db: Session
) -> None:
    team = factory.team()
    cid = factory.customer(None, team)
    h = factory.auth(factory.user("admin"))
    factory.consent(cid, "marketing_sms")
    assert consent.may_use(db, cid, Purpose.marketing_sms) is True
    withdraw = _case(client, h, cid, "withdraw_consent", purpose="marketing_sms")
    _complete(client, h, withdraw["id"])
    db.expire_all()
    assert consent.may_use(db, cid, Purpose.marketing_sms) is False
    (last,) = consent.history(db, cid)[:1]
    assert (last["purpose"], last["granted"], last["source"], last["evidence"]) == (
        "marketing_sms",
        False,
        "dsr",
        f"dsr:{withdraw['id']}",
    )
    factory.consent(cid, "profiling")
    restrict = _case(client, h, cid, "restrict")
    _complete(client, h, restrict["id"])
    assert consent.is_restricted(db, cid) is True
    assert consent.may_use(db, cid, Purpose.profiling) is False
    r = client.post(BASE, json={"customer_id": cid, "kind": "withdraw_consent", "channel": "x"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "purpose"


def test_overdue_endpoint_lists_only_late_open_cases(
    client: TestClient, factory: Factory, db: Session
) -> None:
    team = factory.team()
    cid = factory.customer(None, team)
    old = dsr.open_request(
        db, cid, RequestKind.access, channel="email", details=None, actor=None, now=T0 - dt.timedelta(days=40)
    )
    dsr.open_request(db, cid, RequestKind.access, channel="email", details=None, actor=None)
    db.flush()
    h = factory.auth(factory.user("team_lead", team))
    r = client.get(f"{BASE}/overdue", headers=h)
    assert [c["id"] for c in r.json()] == [old.id]
    listed = client.get(BASE, params={"overdue": "true"}, headers=h).json()["items"]
    assert [c["id"] for c in listed] == [old.id]
    assert (
        client.get(f"{BASE}/overdue", headers=factory.auth(factory.user("sales_rep", team))).status_code
        == 403
    )
