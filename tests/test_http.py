"""HTTP conventions: ETag/If-Match lost-update protection and the If-Match parser."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from rapport.errors import PreconditionFailed, PreconditionRequired
from rapport.http import expected_version
from rapport.models import ContactPoint, Customer
from tests.factories import Factory


def _request(if_match: str | None) -> Request:
    headers = [] if if_match is None else [(b"if-match", if_match.encode())]
    return Request({"type": "http", "method": "PATCH", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    ("header", "version"),
    [('"7.3"', 3), ('W/"7.3"', 3), ('"8.1", "7.12"', 12), (' "7.4" ', 4)],
)
def test_if_match_names_the_version_of_this_record(header: str, version: int) -> None:
    assert expected_version(_request(header), 7) == version


@pytest.mark.parametrize("header", ['"8.3"', '"7.x"', "*", '"7."', '"7.-1"', '"7.' + "9" * 19 + '"', "7"])
def test_if_match_for_another_record_or_malformed_is_412(header: str) -> None:
    with pytest.raises(PreconditionFailed):
        expected_version(_request(header), 7)


def test_missing_if_match_is_428() -> None:
    with pytest.raises(PreconditionRequired):
        expected_version(_request(None), 7)
    with pytest.raises(PreconditionRequired):
        expected_version(_request(""), 7)


@pytest.mark.parametrize(
    ("path", "body", "model"),
    [
        ("customers", {"city": "杭州"}, Customer),
        ("contact-points", {"label": "work"}, ContactPoint),
    ],
)
def test_patch_requires_the_current_etag(
    client: TestClient, factory: Factory, path: str, body: dict[str, str], model: type
) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    customer = factory.customer(owner_id=rep, team_id=team)
    record = customer if model is Customer else factory.contact(customer)
    h = factory.auth(rep)
    url = f"/api/v1/{path}/{record}"
    current = client.get(url, headers=h)
    assert current.headers["etag"] == f'"{record}.1"'

    missing = client.patch(url, json=body, headers=h)
    assert missing.status_code == 428
    assert missing.json()["type"] == "https://rapport.dev/problems/precondition-required"
    stale = client.patch(url, json=body, headers={**h, "If-Match": f'"{record}.2"'})
    assert stale.status_code == 412
    assert stale.json()["type"] == "https://rapport.dev/problems/precondition-failed"
    other = client.patch(url, json=body, headers={**h, "If-Match": f'"{record + 1}.1"'})
    assert other.status_code == 412
    assert factory.row(model, record)["version"] == 1

    ok = client.patch(url, json=body, headers={**h, "If-Match": current.headers["etag"]})
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == f'"{record}.2"'
    assert ok.json()["version"] == 2
    replay = client.patch(url, json=body, headers={**h, "If-Match": current.headers["etag"]})
    assert replay.status_code == 412
    assert factory.row(model, record)["version"] == 2


def test_delete_requires_the_current_etag(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    customer = factory.customer(owner_id=rep, team_id=team)
    contact = factory.contact(customer)
    h = factory.auth(rep)
    url = f"/api/v1/contact-points/{contact}"
    assert client.delete(url, headers=h).status_code == 428
    assert client.delete(url, headers={**h, "If-Match": f'"{contact}.5"'}).status_code == 412
    assert factory.row(ContactPoint, contact)["id"] == contact
    assert client.delete(url, headers={**h, "If-Match": f'"{contact}.1"'}).status_code == 204
    assert client.get(url, headers=h).status_code == 404
