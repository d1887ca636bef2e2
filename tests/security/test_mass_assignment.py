"""Mass assignment: server-owned fields sent in any JSON body are refused by name, nothing stored."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.http import etag
from rapport.privacy.portal_endpoints import PORTAL_PUBLIC
from tests.factories import Factory
from tests.security.conftest import World
from tests.security.test_bola import record_model
from tests.security.walk import Examples, operations, request, required_query, snapshot

PROTECTED = {
    "owner_id": 1,
    "team_id": 1,
    "version": 99,
    "id": 12345,
    "created_at": "2020-01-01T00:00:00Z",
    "role": "admin",
}


def test_every_json_body_refuses_server_owned_fields(
    app: FastAPI, client: TestClient, factory: Factory, world: World
) -> None:
    admin = factory.user("admin", None)
    headers = factory.auth(admin)
    own = world.east
    examples = Examples(
        app,
        {
            "customer_id": own.records["customers"],
            "organisation_id": own.records["organisations"],
            "assignee_id": own.rep,
            "author_id": own.rep,
            "user_id": own.rep,
            "product_id": world.product,
        },
    )
    portal = {"Authorization": f"Bearer {factory.portal_token(own.records['customers'])}"}
    before = snapshot(factory.conn)
    refused: list[tuple[str, str]] = []
    for op in operations(app):
        media_type, schema = op.content()
        # The login form (POST /auth/token) is not JSON: FastAPI reads only the two form fields it
        # declares, so extra form fields cannot be assigned to anything.
        if op.method not in ("POST", "PATCH", "PUT") or media_type != "application/json":
            continue
        assert schema is not None
        declared = set(examples.properties(schema))
        h = dict(headers)
        if op.path.startswith("/api/v1/privacy-portal/") and (op.method, op.path) not in PORTAL_PUBLIC:
            # The customers' portal takes the customer's own session token, not a staff one.
            h = portal
        record_id = 1
        if op.has_record_id:
            # The caller's own record, with its current ETag: the extra field is the only fault.
            model = record_model(op)
            record_id = own.records[op.record_segment]
            if model is not None:
                row = factory.row(model, record_id)
                if "version" in row:
                    h["If-Match"] = etag(record_id, row["version"])
        for field, value in PROTECTED.items():
            if field in declared:
                continue
            body = {**examples.body(schema), field: value}
            r = request(
                client,
                op,
                record_id=record_id,
                headers=h,
                body=body,
                query=required_query(examples, op),
            )
            assert r.status_code == 422, f"{op} + {field}: {r.status_code} {r.text}"
            problem = r.json()
            assert r.headers["content-type"] == "application/problem+json"
            assert field in [e["field"] for e in problem["errors"]], f"{op} + {field}: {problem}"
            refused.append((str(op), field))
    assert snapshot(factory.conn) == before
    assert ("POST /api/v1/customers", "owner_id") in refused
    assert ("PATCH /api/v1/customers/{record_id}", "version") in refused
    assert ("POST /api/v1/customers/{record_id}/contact-points", "id") in refused
    assert ("POST /api/v1/auth/api-keys", "role") in refused
