"""Privacy complaints: received, acknowledged, resolved, with deadlines and an overdue list."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from rapport.models import PrivacyComplaint
from tests.factories import Factory

NOW = dt.datetime.now(dt.UTC)


def test_complaint_lifecycle_with_settings_deadlines(client: TestClient, factory: Factory) -> None:
    service = factory.user("service_rep", factory.team())
    office = factory.user("crm_specialist", factory.team())
    cid = factory.customer()
    r = client.post(
        "/api/v1/privacy-complaints",
        json={"customer_id": cid, "channel": "phone", "summary": "还在收到营销短信"},
        headers=factory.auth(service),
    )
    assert r.status_code == 201, r.text
    c = r.json()
    received = dt.datetime.fromisoformat(c["received_at"])
    assert c["status"] == "received"
    assert dt.datetime.fromisoformat(c["acknowledge_due_at"]) - received == dt.timedelta(days=3)
    assert dt.datetime.fromisoformat(c["resolve_due_at"]) - received == dt.timedelta(days=15)
    # Service takes complaints in but does not close them.
    r = client.post(
        f"/api/v1/privacy-complaints/{c['id']}/acknowledge",
        headers={**factory.auth(service), "If-Match": f'"{c["id"]}.1"'},
    )
    assert r.status_code == 403
    h = factory.auth(office)
    r = client.post(
        f"/api/v1/privacy-complaints/{c['id']}/acknowledge", headers={**h, "If-Match": f'"{c["id"]}.1"'}
    )
    assert r.status_code == 200 and r.json()["status"] == "acknowledged" and r.json()["handler_id"] == office
    r = client.post(
        f"/api/v1/privacy-complaints/{c['id']}/resolve",
        json={"resolution": "已退订全部营销短信并致歉"},
        headers={**h, "If-Match": f'"{c["id"]}.2"'},
    )
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["resolution"]) == ("resolved", "已退订全部营销短信并致歉")
    assert r.json()["resolved_at"] is not None
    again = client.post(
        f"/api/v1/privacy-complaints/{c['id']}/acknowledge", headers={**h, "If-Match": f'"{c["id"]}.3"'}
    )
    assert again.status_code == 409
    stale = client.post(
        f"/api/v1/privacy-complaints/{c['id']}/resolve",
        json={"resolution": "x"},
        headers={**h, "If-Match": f'"{c["id"]}.1"'},
    )
    assert stale.status_code == 412


def test_overdue_list(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("admin"))
    late_ack = factory.complaint(acknowledge_due_at=NOW - dt.timedelta(hours=1))
    late_resolve = factory.complaint(
        status="acknowledged",
        acknowledged_at=NOW - dt.timedelta(days=10),
        acknowledge_due_at=NOW - dt.timedelta(days=12),
        resolve_due_at=NOW - dt.timedelta(minutes=5),
    )
    factory.complaint()  # on time
    factory.complaint(  # acknowledged in time, not yet due
        status="acknowledged", acknowledge_due_at=NOW - dt.timedelta(days=1), acknowledged_at=NOW
    )
    factory.complaint(  # resolved late is closed, not overdue
        status="resolved",
        resolve_due_at=NOW - dt.timedelta(days=1),
        acknowledge_due_at=NOW - dt.timedelta(days=9),
    )
    r = client.get("/api/v1/privacy-complaints/overdue", headers=h)
    assert r.status_code == 200
    assert [c["id"] for c in r.json()["items"]] == [late_resolve, late_ack]
    listed = client.get("/api/v1/privacy-complaints?status=received", headers=h).json()["items"]
    assert late_ack in [c["id"] for c in listed] and late_resolve not in [c["id"] for c in listed]
    # Sales reps are not the privacy office.
    rep = factory.auth(factory.user("sales_rep", factory.team()))
    assert client.get("/api/v1/privacy-complaints/overdue", headers=rep).status_code == 403
    assert factory.row(PrivacyComplaint, late_ack)["status"] == "received"
