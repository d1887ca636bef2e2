"""Every route refuses anonymous and forged callers, except the few declared public."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from rapport.auth.endpoints import PUBLIC
from rapport.privacy.portal_endpoints import PORTAL_PUBLIC
from tests.security.walk import Examples, operations, request, required_query

# Routes outside the OpenAPI document that anyone may call; a hidden route not listed here fails.
UNDOCUMENTED_PUBLIC = {"/healthz", "/privacy"}


def test_every_api_route_is_in_the_openapi_document(app: FastAPI) -> None:
    documented = {(op.method, op.path) for op in operations(app)}
    hidden = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods - {"HEAD"}:
            if (method, route.path) not in documented and route.path not in UNDOCUMENTED_PUBLIC:
                hidden.append(f"{method} {route.path}")
    assert hidden == []
    assert set(UNDOCUMENTED_PUBLIC) <= {getattr(r, "path", "") for r in app.routes}


def test_public_set_names_only_existing_routes(app: FastAPI) -> None:
    documented = {(op.method, op.path) for op in operations(app)}
    assert set(PUBLIC) <= documented
    assert {
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/session"),
        ("GET", "/api/v1/auth/oidc/login"),
        ("GET", "/api/v1/auth/oidc/callback"),
    } == PUBLIC
    # Customers prove who they are with a one-time code; these two routes are how they start.
    assert set(PORTAL_PUBLIC) <= documented
    assert {
        ("POST", "/api/v1/privacy-portal/challenges"),
        ("POST", "/api/v1/privacy-portal/sessions"),
    } == PORTAL_PUBLIC


def test_every_non_public_operation_answers_401_problem(app: FastAPI, client: TestClient) -> None:
    examples = Examples(app)
    walked = []
    for op in operations(app):
        if (op.method, op.path) in PUBLIC | PORTAL_PUBLIC:
            continue
        _, schema = op.content()
        body, query = examples.body(schema), required_query(examples, op)
        for headers in (
            {},
            {"Authorization": "Bearer rat_forged-token-that-was-never-issued"},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
        ):
            r = request(client, op, headers=headers, body=body, query=query)
            assert r.status_code == 401, f"{op} with {headers}: {r.status_code} {r.text}"
            assert r.headers["content-type"] == "application/problem+json", op
            problem = r.json()
            assert problem["status"] == 401 and problem["type"].endswith("/not-authenticated"), op
            assert r.headers["www-authenticate"] == "Bearer", op
            assert problem["request_id"] == r.headers["x-request-id"], op
        walked.append(str(op))
    # The customers, contact points and auth routes alone are 18 operations; fewer means the walk broke.
    assert len(walked) >= 18, walked


def test_public_routes_work_without_a_token(client: TestClient) -> None:
    # Public but still guarded: wrong credentials are 401 problems, not 500s or tokens.
    r = client.post("/api/v1/auth/token", data={"username": "nobody", "password": "nothing-here-at-all"})
    assert r.status_code == 401 and r.json()["type"].endswith("/not-authenticated")
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": "rrt_never-issued"})
    assert r.status_code == 401 and r.json()["detail"] == "unknown refresh token"
