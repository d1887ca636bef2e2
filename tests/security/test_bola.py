"""Broken object-level authorisation: another team's record id answers 404 on every route.

The walk covers every operation with a ``record_id`` path parameter in the OpenAPI document; a
route added later must name its record kind in RECORD_KINDS or this test fails.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.http import etag
from rapport.models import (
    ApiKey,
    ContactPoint,
    Customer,
    CustomerMerge,
    DataSubjectRequest,
    DedupCluster,
    ImportJob,
    Interaction,
    Order,
    Organisation,
    Segment,
    Task,
    Team,
    User,
)
from tests.factories import Factory
from tests.security.conftest import World
from tests.security.walk import Examples, Operation, operations, request, required_query, snapshot

# Path segment before {record_id} -> the model whose row that id names. Every kind here is scoped
# to a team (or, for API keys, to their owner), so an East sales rep must not reach North's row.
RECORD_KINDS: dict[str, type] = {
    "customers": Customer,
    "contact-points": ContactPoint,
    "organisations": Organisation,
    "orders": Order,
    "interactions": Interaction,
    "tasks": Task,
    "users": User,
    "teams": Team,
    "api-keys": ApiKey,  # /auth/api-keys: another user's key is as invisible as another team's record
    "requests": DataSubjectRequest,  # /privacy/requests: scoped through the customer
    "segments": Segment,
    "merges": CustomerMerge,  # scoped through the survivor
    "clusters": DedupCluster,  # /dedup/clusters: scoped through the member customers
    "imports": ImportJob,  # scoped to the person (or team) who started it
}
# Global catalogues: every role that may read them reads all of them (Scope.all in the policy),
# so there is no "other team's" product or custom field to probe.
# Webhook subscriptions are administrator-only configuration with no team: every other role gets
# 403 on every webhook route (tests/webhooks/test_webhooks.py proves it).
GLOBAL_CATALOGUES = {"products", "custom-fields", "webhooks"}
# Kinds a sales rep may not touch at all (403 whatever the record): their scope is probed with
# East's team lead, whose grants on them are team-scoped.
LEAD_KINDS = {"clusters", "imports"}
# The privacy office's registers: every role granted them holds Scope.all (see policy.py), so,
# like the catalogues, there is no "other team's" agreement or complaint to probe. Complaints name
# a customer, who must be visible to whoever files the complaint.
GLOBAL_CATALOGUES |= {"agreements", "privacy-complaints"}


def record_model(op: Operation) -> type | None:
    segment = op.record_segment
    if segment in GLOBAL_CATALOGUES:
        return None
    if segment not in RECORD_KINDS:
        raise AssertionError(
            f"{op}: unknown record kind '{segment}'; add it to RECORD_KINDS (and a record of that "
            "kind to tests/security/conftest.py) so the route's scope is proven"
        )
    return RECORD_KINDS[segment]


def test_unknown_record_kind_is_refused() -> None:
    # An unmapped record_id route must fail the walk rather than be skipped.
    with pytest.raises(AssertionError, match="unknown record kind 'widgets'"):
        record_model(Operation("GET", "/api/v1/widgets/{record_id}", {}))


def test_other_teams_records_are_404_on_every_record_route(
    app: FastAPI, client: TestClient, factory: Factory, world: World
) -> None:
    east, north = world.east, world.north
    headers = factory.auth(east.rep)
    # References in bodies point at the caller's own, visible records: scope is the only obstacle.
    examples = Examples(
        app,
        {
            "customer_id": east.records["customers"],
            "organisation_id": east.records["organisations"],
            "owner_id": east.rep,
            "assignee_id": east.rep,
            "author_id": east.rep,
            "user_id": east.rep,
            "team_id": east.team,
            "product_id": world.product,
        },
    )
    lead_headers = factory.auth(factory.user("team_lead", east.team))
    before = snapshot(factory.conn)
    probed: list[str] = []
    for op in operations(app):
        if not op.has_record_id:
            continue
        model = record_model(op)
        if model is None:
            continue
        segment = op.record_segment
        target = north.records[segment]
        row = factory.row(model, target)
        h = dict(lead_headers if segment in LEAD_KINDS else headers)
        if "version" in row:
            h["If-Match"] = etag(target, row["version"])
        _, schema = op.content()
        r = request(
            client,
            op,
            record_id=target,
            headers=h,
            body=examples.body(schema),
            query=required_query(examples, op),
        )
        assert r.status_code == 404, f"{op} on North's {segment} {target}: {r.status_code} {r.text}"
        assert r.headers["content-type"] == "application/problem+json", op
        assert r.json()["type"].endswith("/not-found"), op
        probed.append(f"{op}")
    assert snapshot(factory.conn) == before
    # Sanity: the same caller reaches its own team's records, so 404 above is scope, not breakage.
    own = client.get(f"/api/v1/customers/{east.records['customers']}", headers=headers)
    assert own.status_code == 200
    assert {
        "GET /api/v1/customers/{record_id}",
        "PATCH /api/v1/customers/{record_id}",
        "DELETE /api/v1/customers/{record_id}",
        "POST /api/v1/customers/{record_id}/assignment",
        "GET /api/v1/customers/{record_id}/360",
        "POST /api/v1/customers/{record_id}/contact-points",
        "PATCH /api/v1/contact-points/{record_id}",
        "DELETE /api/v1/auth/api-keys/{record_id}",
    } <= set(probed)
