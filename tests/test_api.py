"""Properties of the API's route table as published in the OpenAPI document."""

from __future__ import annotations

import re

from fastapi import FastAPI

METHODS = ("get", "post", "put", "patch", "delete")


def _operations(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in METHODS
        if method in item
    }


def test_record_path_parameters_are_named_record_id(app: FastAPI) -> None:
    names = {name for _, path in _operations(app) for name in re.findall(r"\{([^}]+)\}", path)}
    assert names == {"record_id"}


def test_domain_routes_are_mounted(app: FastAPI) -> None:
    ops = _operations(app)
    expected = {
        ("GET", "/api/v1/organisations/{record_id}/people"),
        ("POST", "/api/v1/products"),
        ("POST", "/api/v1/customers/{record_id}/orders"),
        ("PATCH", "/api/v1/orders/{record_id}"),
        ("DELETE", "/api/v1/orders/{record_id}"),
        ("POST", "/api/v1/customers/{record_id}/interactions"),
        ("POST", "/api/v1/customers/{record_id}/tasks"),
        ("POST", "/api/v1/users/{record_id}/disable"),
        ("POST", "/api/v1/users/{record_id}/enable"),
        ("DELETE", "/api/v1/teams/{record_id}"),
        ("POST", "/api/v1/custom-fields"),
        ("GET", "/api/v1/audit/events"),
        ("GET", "/api/v1/audit/verify"),
    }
    assert expected - ops == set()
    # Users are disabled, never deleted; order lines and audit events have no write routes.
    assert ("DELETE", "/api/v1/users/{record_id}") not in ops
    assert [path for _, path in ops if "order-lines" in path] == []
    assert [(m, p) for m, p in ops if m != "GET" and p.startswith("/api/v1/audit")] == []
