"""Hidden fields never leave the server: margins for service reps, identities for analysts."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.auth.endpoints import PUBLIC
from rapport.models import Order
from tests.factories import Factory
from tests.security.conftest import World
from tests.security.walk import Examples, find_keys, operations, request, required_query

MARGINS = frozenset({"cost_amount", "margin_amount", "unit_cost"})
IDENTITIES = frozenset({"display_name", "family_name", "given_name", "value", "email"})


def test_service_rep_never_receives_order_costs_or_margins(
    client: TestClient, factory: Factory, world: World
) -> None:
    service = factory.user("service_rep", world.east.team)
    h = factory.auth(service)
    order = world.north.records["orders"]
    # The seeded rows hold costs, so their absence below is the mask, not missing data.
    stored = factory.row(Order, order)
    assert (stored["cost_amount"], stored["margin_amount"]) == (60, 40)
    listing = client.get("/api/v1/orders", headers=h)
    assert listing.status_code == 200, listing.text
    items = listing.json()["items"]
    assert {i["id"] for i in items} >= {order, world.east.records["orders"]}
    assert list(find_keys(items, MARGINS)) == []
    one = client.get(f"/api/v1/orders/{order}", headers=h)
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["total_amount"] == "100.00"
    assert len(body["lines"]) == 1
    assert list(find_keys(body, MARGINS)) == []
    product = client.get(f"/api/v1/products/{world.product}", headers=h)
    assert product.status_code == 200, product.text
    assert list(find_keys(product.json(), MARGINS)) == []


def test_analyst_lists_contain_no_names_phones_or_emails(
    app: FastAPI, client: TestClient, factory: Factory, world: World
) -> None:
    analyst = factory.user("data_analyst", world.east.team)
    factory.contact(world.east.records["customers"], kind="phone", value="+8613900139000")
    h = factory.auth(analyst)
    examples = Examples(app)
    seen_items = 0
    walked = []
    for op in operations(app):
        if op.method != "GET" or "{" in op.path or (op.method, op.path) in PUBLIC:
            continue  # public routes are the login flows, not data
        if op.path.startswith("/api/v1/privacy-portal"):
            continue  # the customers' own portal: staff tokens are not accepted there (401)
        if op.path == "/api/v1/merges/preview":
            continue  # needs two real customer ids; its masks are proven in tests/merge/test_api.py
        r = request(client, op, headers=h, query=required_query(examples, op))
        if r.status_code == 403:
            continue  # the analyst may not list this resource at all
        assert r.status_code == 200, f"{op}: {r.status_code} {r.text}"
        if r.headers["content-type"].startswith("text/csv"):
            # Exports: the header row names every column the file carries.
            header = r.content.decode("utf-8").lstrip("\ufeff").splitlines()[0].split(",")
            assert not set(header) & IDENTITIES, op
            walked.append(op.path)
            continue
        data = r.json()
        items = data["items"] if isinstance(data, dict) and "items" in data else data
        if not isinstance(items, list):
            continue  # not a list route (e.g. /auth/me)
        assert list(find_keys(items, IDENTITIES)) == [], op
        seen_items += len(items)
        walked.append(op.path)
    # Customers and contact points are seeded on both teams, so the walk really saw identities' rows.
    assert {"/api/v1/customers", "/api/v1/contact-points"} <= set(walked)
    assert seen_items >= 5
