"""The customer privacy portal: one-time codes, enumeration safety, sessions, what customers see."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rapport.models import DataSubjectRequest, PortalChallenge, PortalSession
from rapport.models.base import utcnow
from rapport.privacy import consent
from rapport.privacy.consent import Purpose
from rapport.privacy.outbox import DevOutbox
from tests.factories import Factory

API = "/api/v1/privacy-portal"
EMAIL = "li.lei@example.com"


def outbox(app: FastAPI) -> DevOutbox:
    box = app.state.notifier
    assert isinstance(box, DevOutbox)
    return box


def known_customer(factory: Factory, email: str = EMAIL, verified: bool = True) -> int:
    cid = factory.customer(display_name="李雷")
    factory.contact(cid, kind="email", value=email, is_verified=verified, label="老婆的邮箱")
    return cid


def code_for(app: FastAPI, address: str) -> str:
    msg = outbox(app).last_to(address)
    assert msg is not None
    return msg.body.split(" ")[0]


def start(client: TestClient, address: str) -> Any:
    return client.post(f"{API}/challenges", json={"address": address})


def login(app: FastAPI, client: TestClient, address: str = EMAIL) -> dict[str, str]:
    r = start(client, address)
    r = client.post(
        f"{API}/sessions", json={"challenge": r.json()["challenge"], "code": code_for(app, address)}
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_same_answer_whether_or_not_the_address_exists(
    app: FastAPI, client: TestClient, factory: Factory
) -> None:
    known_customer(factory)
    known_customer(factory, "unverified@example.com", verified=False)
    answers = [start(client, a) for a in (EMAIL, "nobody@example.com", "unverified@example.com")]
    assert [r.status_code for r in answers] == [202, 202, 202]
    bodies = [r.json() for r in answers]
    assert {b["message"] for b in bodies} == {
        "If this address belongs to a customer and is verified, a code was sent to it."
    }
    assert [set(b) for b in bodies] == [{"challenge", "expires_in", "message"}] * 3
    assert len({len(b["challenge"]) for b in bodies}) == 1
    # Only the verified address of a customer receives anything.
    assert [
        m.to for m in outbox(app).messages if m.to in (EMAIL, "nobody@example.com", "unverified@example.com")
    ] == [EMAIL]
    # A challenge row exists for every request, so the rate limit treats them alike too.
    assert factory.scalar(select(PortalChallenge.id).order_by(PortalChallenge.id.desc()).limit(1)) is not None
    rows = (
        factory.conn.execute(select(PortalChallenge.customer_id).order_by(PortalChallenge.id)).scalars().all()
    )
    assert len(rows) == 3 and rows[1:] == [None, None]
    # A guessed code for an unknown address is refused exactly like a wrong one.
    r = client.post(f"{API}/sessions", json={"challenge": bodies[1]["challenge"], "code": "000000"})
    assert (
        r.status_code == 401
        and r.json()["detail"] == "the code is wrong, expired or used up; ask for a new one"
    )


def test_rate_limit_is_per_address_known_or_not(client: TestClient, factory: Factory) -> None:
    known_customer(factory)
    for address in (EMAIL, "nobody@example.com"):
        assert [start(client, address).status_code for _ in range(4)] == [202, 202, 202, 429]
    r = start(client, EMAIL.upper())  # the same address, normalised
    assert r.status_code == 429 and r.headers["retry-after"] == "900"


def test_codes_and_tokens_are_stored_as_digests(app: FastAPI, client: TestClient, factory: Factory) -> None:
    known_customer(factory)
    h = login(app, client)
    code = code_for(app, EMAIL)
    row = factory.conn.execute(select(PortalChallenge)).mappings().one()
    assert code not in row["code_hash"] and len(row["code_hash"]) == 64 and row["consumed_at"] is not None
    assert EMAIL not in row["address_hash"]
    token = h["Authorization"].removeprefix("Bearer ")
    stored = factory.conn.execute(select(PortalSession.token_hash)).scalars().all()
    assert token not in stored and len(stored) == 1 and len(stored[0]) == 64


def test_wrong_code_then_right_code(app: FastAPI, client: TestClient, factory: Factory) -> None:
    known_customer(factory)
    challenge = start(client, EMAIL).json()["challenge"]
    code = code_for(app, EMAIL)
    wrong = "1" + code[1:] if code[0] != "1" else "2" + code[1:]
    r = client.post(f"{API}/sessions", json={"challenge": challenge, "code": wrong})
    assert r.status_code == 401
    assert factory.conn.execute(select(PortalChallenge.attempts)).scalar_one() == 1
    r = client.post(f"{API}/sessions", json={"challenge": challenge, "code": code})
    assert r.status_code == 201 and r.json()["expires_in"] == 900
    # Used once: the same code does not open a second session.
    r = client.post(f"{API}/sessions", json={"challenge": challenge, "code": code})
    assert r.status_code == 401


def test_attempts_exhausted_kills_the_code(app: FastAPI, client: TestClient, factory: Factory) -> None:
    known_customer(factory)
    challenge = start(client, EMAIL).json()["challenge"]
    code = code_for(app, EMAIL)
    wrong = "1" + code[1:] if code[0] != "1" else "2" + code[1:]
    for _ in range(5):
        assert client.post(f"{API}/sessions", json={"challenge": challenge, "code": wrong}).status_code == 401
    r = client.post(f"{API}/sessions", json={"challenge": challenge, "code": code})
    assert r.status_code == 401
    assert factory.conn.execute(select(PortalChallenge.attempts)).scalar_one() == 5
    assert factory.conn.execute(select(PortalSession.id)).first() is None


def test_expired_code_is_refused(app: FastAPI, client: TestClient, factory: Factory) -> None:
    known_customer(factory)
    challenge = start(client, EMAIL).json()["challenge"]
    code = code_for(app, EMAIL)
    factory.conn.execute(update(PortalChallenge).values(expires_at=utcnow()))
    r = client.post(f"{API}/sessions", json={"challenge": challenge, "code": code})
    assert r.status_code == 401
    assert factory.conn.execute(select(PortalSession.id)).first() is None


def test_expired_session_and_staff_tokens_are_refused(
    app: FastAPI, client: TestClient, factory: Factory
) -> None:
    cid = known_customer(factory)
    staff = factory.auth(factory.user("admin"))
    assert client.get(f"{API}/me", headers=staff).status_code == 401
    h = login(app, client)
    # Portal tokens open nothing on the staff API.
    assert client.get(f"/api/v1/customers/{cid}", headers=h).status_code == 401
    factory.conn.execute(update(PortalSession).values(expires_at=utcnow()))
    assert client.get(f"{API}/me", headers=h).status_code == 401


def test_what_the_customer_sees(app: FastAPI, client: TestClient, factory: Factory) -> None:
    cid = known_customer(factory)
    rep = factory.user("sales_rep", factory.team())
    factory.interaction(
        cid, author_id=rep, kind="note", direction="internal", subject="难缠的客户", body="内部评价"
    )
    factory.interaction(
        cid, author_id=rep, kind="call", direction="inbound", subject="咨询发票", body="员工记录"
    )
    factory.order(cid, order_number="SO-PORTAL-1")
    other = factory.customer(display_name="别人")
    factory.order(other)
    h = login(app, client)
    r = client.get(f"{API}/me", headers=h)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    me = r.json()
    assert me["customer"]["id"] == cid and me["customer"]["display_name"] == "李雷"
    assert "owner_id" not in me["customer"]
    assert [(c["kind"], c["value"]) for c in me["contact_points"]] == [("email", EMAIL)]
    assert "label" not in me["contact_points"][0]  # staff-typed
    assert [i["subject"] for i in me["interactions"]] == ["咨询发票"]
    assert "body" not in me["interactions"][0]
    assert me["orders"]["order_count"] == 1
    assert [o["order_number"] for o in me["orders"]["recent"]] == ["SO-PORTAL-1"]
    assert "margin_amount" not in me["orders"]["recent"][0]
    assert me["consents"] == {"restricted": False, "current": []}
    assert "内部评价" not in r.text and "难缠" not in r.text and "别人" not in r.text


def test_withdraw_and_file_request(app: FastAPI, client: TestClient, factory: Factory, db: Session) -> None:
    cid = known_customer(factory)
    admin = factory.auth(factory.user("admin"))
    r = client.post(
        f"/api/v1/customers/{cid}/consents",
        json={"purpose": "marketing_email", "granted": True, "source": "web_form"},
        headers=admin,
    )
    assert r.status_code == 201
    h = login(app, client)
    r = client.post(f"{API}/consents/withdraw", json={"purpose": "marketing_email"}, headers=h)
    assert r.status_code == 200 and r.json()["granted"] is False
    assert consent.may_use(db, cid, Purpose.marketing_email) is False
    (last,) = consent.history(db, cid)[:1]
    assert (last["source"], last["actor_kind"], last["actor_id"]) == ("privacy_portal", "data_subject", None)
    bundle = client.post(
        f"{API}/consents/withdraw", json={"purpose": ["profiling", "marketing_sms"]}, headers=h
    )
    assert bundle.status_code == 422
    r = client.post(f"{API}/requests", json={"kind": "delete", "details": "请删除我的资料"}, headers=h)
    assert r.status_code == 201 and (r.json()["kind"], r.json()["status"]) == ("delete", "received")
    # The portal opens a real data-subject request case, with the person's text and no staff actor.
    case = factory.row(DataSubjectRequest, int(r.json()["reference"]))
    assert (case["customer_id"], case["kind"], case["status"], case["channel"], case["details"]) == (
        cid,
        "delete",
        "received",
        "privacy_portal",
        "请删除我的资料",
    )
    assert client.post(f"{API}/requests", json={"kind": "sell"}, headers=h).status_code == 422
    assert client.post(f"{API}/logout", headers=h).status_code == 204
    assert client.get(f"{API}/me", headers=h).status_code == 401


def test_every_portal_response_is_no_store(client: TestClient, factory: Factory) -> None:
    for r in (
        start(client, "nobody@example.com"),
        start(client, "not an address"),
        client.post(f"{API}/sessions", json={"challenge": "x", "code": "1"}),
        client.get(f"{API}/me"),
        client.get("/privacy"),
    ):
        assert r.headers["cache-control"] == "no-store", r.request.url
    assert client.get("/healthz").headers.get("cache-control") is None


def test_privacy_page_in_two_languages(client: TestClient) -> None:
    zh = client.get("/privacy")
    assert zh.status_code == 200 and zh.headers["content-type"].startswith("text/html")
    assert "我的个人信息" in zh.text and '<html lang="zh-CN">' in zh.text
    en = client.get("/privacy?lang=en")
    assert "My personal data" in en.text and '<html lang="en">' in en.text
    assert "My personal data" in client.get("/privacy", headers={"Accept-Language": "en-GB"}).text
    csp = zh.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in zh.text


def test_rate_limit_per_client_address(client: TestClient) -> None:
    # Twenty different addresses from one client, then the client itself is slowed down.
    codes = [start(client, f"probe{i}@example.com").status_code for i in range(21)]
    assert codes == [202] * 20 + [429]
