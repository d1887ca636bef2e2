"""Hostile and malformed input: specific RFC 9457 problems, nothing stored, nothing leaked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from rapport.models import ContactPoint, Customer
from tests.factories import Factory

LEAKS = ("Traceback", "sqlalchemy", "psycopg", "sqlite3", "SELECT ", "INSERT ", "UPDATE ", 'File "')


def assert_problem(r: Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["type"] == f"https://rapport.dev/problems/{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert len(r.headers["x-request-id"]) >= 8
    assert body["request_id"] == r.headers["x-request-id"]
    for leak in LEAKS:
        assert leak not in r.text, leak
    return body


@pytest.fixture
def rep(factory: Factory) -> tuple[int, int, dict[str, str]]:
    team = factory.team()
    user = factory.user("sales_rep", team)
    return user, team, factory.auth(user)


def customers(factory: Factory) -> int:
    return int(factory.scalar(select(func.count()).select_from(Customer)))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": "甲", "nickname": "x"}, "nickname"),
        ({"display_name": 123}, "display_name"),
        ({"display_name": ["甲"]}, "display_name"),
        ({"display_name": "甲", "tags": "vip"}, "tags"),
        ({"display_name": "甲", "birth_date": "yesterday"}, "birth_date"),
        ({"display_name": "甲", "birth_date": "2999-01-01"}, "birth_date"),
        ({"display_name": "甲", "lifecycle_stage": "emperor"}, "lifecycle_stage"),
        ({"display_name": "甲", "organisation_id": "1; DROP TABLE customer"}, "organisation_id"),
        ({"display_name": "甲", "organisation_id": 2**63}, "organisation_id"),
        ({"display_name": "甲", "attributes": {"Bad Key": 1}}, "attributes.Bad Key.[key]"),
        ({"display_name": "甲", "attributes": {"undeclared": 1}}, "attributes.undeclared"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "\u200b\u200d\ufeff"}, "display_name"),
        ({"display_name": "a\x00b"}, "display_name"),
        ({"display_name": "bell\x07"}, "display_name"),
        ({"display_name": "x" * 201}, "display_name"),
        (
            {"display_name": "甲", "contact_points": [{"kind": "email", "value": "not-an-email"}]},
            "contact_points.0.value",
        ),
        (
            {"display_name": "甲", "contact_points": [{"kind": "phone", "value": "12345"}]},
            "contact_points.0.value",
        ),
        (
            {"display_name": "甲", "contact_points": [{"kind": "phone", "value": "call me"}]},
            "contact_points.0.value",
        ),
        ({"display_name": "甲", "contact_points": [{"kind": "fax", "value": "1"}]}, "contact_points.0.kind"),
        ([], ""),
        ("just a string", ""),
        (None, ""),
    ],
)
def test_bad_customer_bodies_are_422_naming_the_field(
    client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]], body: Any, field: str
) -> None:
    r = client.post("/api/v1/customers", json=body, headers=rep[2])
    problem = assert_problem(r, 422, "invalid-input")
    assert field in [e["field"] for e in problem["errors"]], problem
    assert customers(factory) == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"display_name": "\\ud800"}',  # lone high surrogate
        b'{"display_name": "ok\\udfff"}',  # lone low surrogate
        b'{"display_name": "a\\u0000b"}',  # NUL: PostgreSQL cannot store it
    ],
)
def test_unstorable_characters_are_422(
    client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]], raw: bytes
) -> None:
    r = client.post("/api/v1/customers", content=raw, headers={**rep[2], "Content-Type": "application/json"})
    problem = assert_problem(r, 422, "invalid-input")
    assert problem["errors"][0]["field"] == "display_name"
    assert customers(factory) == 0


@pytest.mark.parametrize("raw", [b"{", b'{"display_name": }', b"\xff\xfe", b'{"display_name": "a"} trailing'])
def test_malformed_json_is_422(
    client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]], raw: bytes
) -> None:
    r = client.post("/api/v1/customers", content=raw, headers={**rep[2], "Content-Type": "application/json"})
    assert_problem(r, 422, "invalid-input")
    assert customers(factory) == 0


@pytest.mark.parametrize(
    "name",
    [
        "👩‍👩‍👧 Familie Müller 🦄",
        "محمد بن سلمان",
        "שרה לוי",
        "王小明 (Wáng Xiǎomíng)",
        "Zoë Ångström-Ægir",
        "𠮷野家",  # astral-plane CJK (a surrogate pair in UTF-16)
    ],
)
def test_unicode_names_round_trip_exactly(
    client: TestClient, rep: tuple[int, int, dict[str, str]], name: str
) -> None:
    created = client.post("/api/v1/customers", json={"display_name": name}, headers=rep[2])
    assert created.status_code == 201, created.text
    assert created.json()["display_name"] == name
    again = client.get(f"/api/v1/customers/{created.json()['id']}", headers=rep[2])
    assert again.json()["display_name"] == name


@pytest.mark.parametrize(
    "payload",
    [
        "Robert'); DROP TABLE customer;--",
        "' OR '1'='1",
        "1; SELECT * FROM app_user",
        "<script>alert('x')</script>",
        '<img src=x onerror="alert(1)">',
        "{{7*7}} ${7*7} %s %n",
    ],
)
def test_injection_payloads_are_stored_verbatim(
    client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]], payload: str
) -> None:
    existing = factory.customer(owner_id=rep[0], team_id=rep[1], display_name="原有客户")
    r = client.post(
        "/api/v1/customers",
        json={"display_name": payload, "city": payload[:100], "tags": [payload[:64]]},
        headers=rep[2],
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["display_name"], body["city"], body["tags"]) == (payload, payload[:100], [payload[:64]])
    stored = factory.row(Customer, body["id"])
    assert (stored["display_name"], stored["city"]) == (payload, payload[:100])
    assert customers(factory) == 2
    assert factory.row(Customer, existing)["display_name"] == "原有客户"
    found = client.get("/api/v1/customers", params={"q": payload[:100]}, headers=rep[2])
    assert found.status_code in (200, 422), found.text


def test_invalid_contact_point_values_are_422(
    client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]]
) -> None:
    cid = factory.customer(owner_id=rep[0], team_id=rep[1])
    url = f"/api/v1/customers/{cid}/contact-points"
    for kind, value in (("email", "a@b"), ("email", "two@@example.com"), ("phone", "000"), ("phone", "+1")):
        r = client.post(url, json={"kind": kind, "value": value}, headers=rep[2])
        problem = assert_problem(r, 422, "invalid-input")
        assert [e["field"] for e in problem["errors"]] == ["value"], (kind, value)
        assert problem["errors"][0]["type"] == f"{kind}_invalid"
    assert factory.scalar(select(func.count()).select_from(ContactPoint)) == 0
    ok = client.post(url, json={"kind": "phone", "value": "(021) 6234-5678"}, headers=rep[2])
    assert ok.status_code == 201 and ok.json()["value"] == "+862162345678"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "abc"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"sort": "password_hash"}, "sort"),
        ({"sort": "-; DROP TABLE customer"}, "sort"),
        ({"cursor": "garbage!!"}, "cursor"),
        ({"cursor": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "cursor"),
        ({"unknown_filter": "1"}, "unknown_filter"),
        ({"owner_id": "me"}, "owner_id"),
    ],
)
def test_bad_list_parameters_are_422(
    client: TestClient, rep: tuple[int, int, dict[str, str]], params: dict[str, Any], field: str
) -> None:
    r = client.get("/api/v1/customers", params=params, headers=rep[2])
    problem = assert_problem(r, 422, "invalid-input")
    assert field in [e["field"] for e in problem["errors"]], problem


def test_cursor_is_bound_to_its_sort_and_signed(
    client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]]
) -> None:
    for _ in range(3):
        factory.customer(owner_id=rep[0], team_id=rep[1])
    page = client.get("/api/v1/customers", params={"limit": 1, "sort": "id"}, headers=rep[2]).json()
    cursor = page["next_cursor"]
    assert cursor
    ok = client.get("/api/v1/customers", params={"limit": 1, "sort": "id", "cursor": cursor}, headers=rep[2])
    assert ok.status_code == 200 and ok.json()["items"][0]["id"] > page["items"][0]["id"]
    other_sort = client.get(
        "/api/v1/customers", params={"limit": 1, "sort": "-id", "cursor": cursor}, headers=rep[2]
    )
    assert "cursor was made for sort 'id'" in assert_problem(other_sort, 422, "invalid-input")["detail"]
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    forged = client.get(
        "/api/v1/customers", params={"limit": 1, "sort": "id", "cursor": flipped}, headers=rep[2]
    )
    assert assert_problem(forged, 422, "invalid-input")["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("record_id", ["abc", "0", "-1", str(2**63), "1.5", "%00"])
def test_bad_record_ids_are_422(
    client: TestClient, rep: tuple[int, int, dict[str, str]], record_id: str
) -> None:
    r = client.get(f"/api/v1/customers/{record_id}", headers=rep[2])
    assert_problem(r, 422, "invalid-input")


def test_missing_records_are_404_on_every_verb(
    client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]]
) -> None:
    h = {**rep[2], "If-Match": '"999999.1"'}
    for method, url, body in (
        ("GET", "/api/v1/customers/999999", None),
        ("PATCH", "/api/v1/customers/999999", {"city": "x"}),
        ("DELETE", "/api/v1/customers/999999", None),
        ("GET", "/api/v1/contact-points/999999", None),
        ("PATCH", "/api/v1/contact-points/999999", {"value": "someone@example.com"}),
        ("PATCH", "/api/v1/contact-points/999999", {"label": "home"}),
        ("POST", "/api/v1/customers/999999/contact-points", {"kind": "email", "value": "a@example.com"}),
        ("GET", "/api/v1/customers/999999/360", None),
    ):
        r = client.request(method, url, json=body, headers=h)
        assert_problem(r, 404, "not-found")


def test_unknown_routes_and_methods_are_problems(
    client: TestClient, rep: tuple[int, int, dict[str, str]]
) -> None:
    assert_problem(client.get("/api/v1/no-such-thing", headers=rep[2]), 404, "not-found")
    assert_problem(client.put("/api/v1/customers", json={}, headers=rep[2]), 405, "method-not-allowed")


def test_oversized_body_is_413(
    app: FastAPI, client: TestClient, factory: Factory, rep: tuple[int, int, dict[str, str]]
) -> None:
    limit = app.state.settings.max_body_bytes
    big = b'{"display_name": "' + b"x" * limit + b'"}'
    r = client.post("/api/v1/customers", content=big, headers={**rep[2], "Content-Type": "application/json"})
    body = assert_problem(r, 413, "payload-too-large")
    assert body["detail"] == f"Request bodies are limited to {limit} bytes."

    def chunks() -> Iterator[bytes]:
        # A generator body goes out chunked, without Content-Length: the limit must still hold.
        yield b'{"display_name": "'
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    r = client.post(
        "/api/v1/customers", content=chunks(), headers={**rep[2], "Content-Type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    body = assert_problem(r, 413, "payload-too-large")
    assert body["detail"] == f"Request bodies are limited to {limit} bytes."
    bad_length = client.post(
        "/api/v1/customers",
        content=b"{}",
        headers={**rep[2], "Content-Type": "application/json", "Content-Length": "-5"},
    )
    assert bad_length.status_code in (400, 413)
    assert customers(factory) == 0


def test_request_id_is_echoed_only_when_sane(client: TestClient) -> None:
    good = client.get("/api/v1/auth/me", headers={"X-Request-ID": "abc-123-def-456"})
    assert good.headers["x-request-id"] == "abc-123-def-456"
    for bad in ("short", "x" * 65, "evil\u00e9id-123", "a b c d e f g h", "<script>1</script>"):
        r = client.get("/api/v1/auth/me", headers={"X-Request-ID": bad.encode()})
        assert r.headers["x-request-id"] != bad.encode().decode("latin-1")
        assert len(r.headers["x-request-id"]) == 16
