from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.models import Order, OrderLine
from rapport.models.base import utcnow
from tests.factories import Factory

API = "/api/v1/orders"


def _when(days_ago: int = 1) -> str:
    return (utcnow() - dt.timedelta(days=days_ago)).isoformat()


def _order(lines: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"channel": "online", "currency": "CNY", "ordered_at": _when(), "lines": lines, **kw}


@pytest.fixture
def shop(factory: Factory) -> dict[str, int]:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    return {
        "team": team,
        "rep": rep,
        "customer": factory.customer(rep, team),
        "tea": factory.product(list_price=Decimal("128.00"), unit_cost=Decimal("52.50")),
        "cup": factory.product(list_price=Decimal("35.00"), unit_cost=Decimal("12.00")),
    }


def test_server_prices_the_order(client: TestClient, factory: Factory, shop: dict[str, int]) -> None:
    h = factory.auth(shop["rep"])
    r = client.post(
        f"/api/v1/customers/{shop['customer']}/orders",
        json=_order(
            [
                {"product_id": shop["tea"], "quantity": 3, "discount_amount": "20"},
                {"product_id": shop["cup"], "quantity": 2, "unit_price": "30.00"},
            ]
        ),
        headers=h,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["customer_id"] == shop["customer"]
    assert body["status"] == "pending" and body["paid_at"] is None
    assert body["order_number"].startswith("SO-") and len(body["order_number"]) == 20
    # 3 × 128 − 20 = 364; 2 × 30 = 60; cost 3 × 52.5 + 2 × 12 = 181.5
    assert (body["total_amount"], body["cost_amount"], body["margin_amount"]) == (
        "424.00",
        "181.50",
        "242.50",
    )
    lines = [
        (
            ln["product_id"],
            ln["quantity"],
            ln["unit_price"],
            ln["unit_cost"],
            ln["discount_amount"],
            ln["line_total"],
        )
        for ln in body["lines"]
    ]
    assert lines == [
        (shop["tea"], 3, "128.00", "52.50", "20.00", "364.00"),
        (shop["cup"], 2, "30.00", "12.00", "0.00", "60.00"),
    ]
    assert r.headers["etag"] == f'"{body["id"]}.1"'
    again = client.get(f"{API}/{body['id']}", headers=h).json()
    assert again["lines"] == body["lines"] and again["total_amount"] == "424.00"


def test_cost_unknown_when_a_product_has_no_cost(
    client: TestClient, factory: Factory, shop: dict[str, int]
) -> None:
    free = factory.product(list_price=Decimal("10.00"), unit_cost=None)
    r = client.post(
        f"/api/v1/customers/{shop['customer']}/orders",
        json=_order([{"product_id": shop["tea"], "quantity": 1}, {"product_id": free, "quantity": 1}]),
        headers=factory.auth(shop["rep"]),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["total_amount"], body["cost_amount"], body["margin_amount"]) == ("138.00", None, None)


def test_line_problems_name_the_line(client: TestClient, factory: Factory, shop: dict[str, int]) -> None:
    usd = factory.product(currency="USD")
    retired = factory.product(is_active=False)
    h = factory.auth(shop["rep"])
    url = f"/api/v1/customers/{shop['customer']}/orders"
    r = client.post(
        url,
        json=_order(
            [
                {"product_id": shop["tea"], "quantity": 1},
                {"product_id": 987654, "quantity": 1},
                {"product_id": usd, "quantity": 1},
                {"product_id": retired, "quantity": 1},
                {"product_id": shop["cup"], "quantity": 1, "discount_amount": "35.01"},
            ]
        ),
        headers=h,
    )
    assert r.status_code == 422
    problem = r.json()
    assert problem["detail"] == "lines.1.product_id: no product 987654"
    assert [(e["field"], e["type"]) for e in problem["errors"]] == [
        ("lines.1.product_id", "reference"),
        ("lines.2.product_id", "currency"),
        ("lines.3.product_id", "inactive"),
        ("lines.4.discount_amount", "too_large"),
    ]
    assert problem["errors"][0]["loc"] == ["body", "lines", 1, "product_id"]
    assert factory.scalar(select(func.count()).select_from(Order)) == 0
    assert factory.scalar(select(func.count()).select_from(OrderLine)) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": []}, "lines"),
        ({"ordered_at": "2024-01-01T10:00:00"}, "ordered_at"),
        ({"ordered_at": "2999-01-01T10:00:00Z"}, "ordered_at"),
        ({"currency": "cny"}, "currency"),
        ({"channel": "carrier_pigeon"}, "channel"),
        ({"status": "lost"}, "status"),
        ({"order_number": "SO 1"}, "order_number"),
        ({"total_amount": "1.00"}, "total_amount"),
        ({"customer_id": 1}, "customer_id"),
    ],
)
def test_bad_order_input(
    client: TestClient, factory: Factory, shop: dict[str, int], change: dict[str, Any], field: str
) -> None:
    payload = {**_order([{"product_id": shop["tea"], "quantity": 1}]), **change}
    r = client.post(
        f"/api/v1/customers/{shop['customer']}/orders", json=payload, headers=factory.auth(shop["rep"])
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"quantity": 0}, "lines.0.quantity"),
        ({"quantity": 100_001}, "lines.0.quantity"),
        ({"quantity": 1, "unit_price": "-1"}, "lines.0.unit_price"),
        ({"quantity": 1, "unit_price": "1.001"}, "lines.0.unit_price"),
        ({"quantity": 1, "unit_cost": "1"}, "lines.0.unit_cost"),
        ({"quantity": 1, "line_total": "1"}, "lines.0.line_total"),
    ],
)
def test_bad_line_input(
    client: TestClient, factory: Factory, shop: dict[str, int], line: dict[str, Any], field: str
) -> None:
    payload = _order([{"product_id": shop["tea"], **line}])
    r = client.post(
        f"/api/v1/customers/{shop['customer']}/orders", json=payload, headers=factory.auth(shop["rep"])
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field


def test_too_many_lines_and_too_large_totals(
    client: TestClient, factory: Factory, shop: dict[str, int]
) -> None:
    h = factory.auth(shop["rep"])
    url = f"/api/v1/customers/{shop['customer']}/orders"
    many = _order([{"product_id": shop["tea"], "quantity": 1}] * 501)
    assert client.post(url, json=many, headers=h).json()["errors"][0]["field"] == "lines"
    huge = _order([{"product_id": shop["tea"], "quantity": 100_000, "unit_price": "9999999999.99"}])
    r = client.post(url, json=huge, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "lines.0.quantity"
    assert factory.scalar(select(func.count()).select_from(Order)) == 0


def test_order_number_given_or_unique(client: TestClient, factory: Factory, shop: dict[str, int]) -> None:
    factory.order(shop["customer"], order_number="WEB-1001")
    h = factory.auth(shop["rep"])
    url = f"/api/v1/customers/{shop['customer']}/orders"
    line = [{"product_id": shop["tea"], "quantity": 1}]
    dup = client.post(url, json=_order(line, order_number="WEB-1001"), headers=h)
    assert dup.status_code == 409
    assert dup.json()["detail"] == "order number 'WEB-1001' is already used"
    ok = client.post(url, json=_order(line, order_number="WEB-1002"), headers=h)
    assert ok.status_code == 201 and ok.json()["order_number"] == "WEB-1002"


def test_imported_completed_order_gets_its_timestamps(
    client: TestClient, factory: Factory, shop: dict[str, int]
) -> None:
    when = "2024-03-05T09:30:00+08:00"
    r = client.post(
        f"/api/v1/customers/{shop['customer']}/orders",
        json=_order([{"product_id": shop["cup"], "quantity": 1}], status="completed", ordered_at=when),
        headers=factory.auth(shop["rep"]),
    )
    body = r.json()
    assert body["order_number"].startswith("SO-20240305-")
    assert body["ordered_at"] == body["paid_at"] == body["completed_at"] == "2024-03-05T01:30:00Z"


def _patch(client: TestClient, h: dict[str, str], oid: int, version: int, status: str) -> Any:
    return client.patch(
        f"{API}/{oid}", json={"status": status}, headers={**h, "If-Match": f'"{oid}.{version}"'}
    )


def test_status_state_machine(client: TestClient, factory: Factory, shop: dict[str, int]) -> None:
    oid = factory.order(shop["customer"], status="pending", paid_at=None)
    lead = factory.auth(factory.user("team_lead", shop["team"]))
    bad = _patch(client, lead, oid, 1, "completed")
    assert bad.status_code == 422
    assert bad.json()["detail"] == (
        "status: an order that is pending cannot become completed; next possible: cancelled, paid"
    )
    paid = _patch(client, lead, oid, 1, "paid")
    assert paid.status_code == 200, paid.text
    assert paid.json()["paid_at"] is not None and paid.json()["version"] == 2
    # A stale If-Match is a 412 even when the requested move would also be illegal now.
    assert _patch(client, lead, oid, 1, "paid").status_code == 412
    assert _patch(client, lead, oid, 2, "shipped").status_code == 200
    done = _patch(client, lead, oid, 3, "completed")
    assert done.json()["status"] == "completed" and done.json()["completed_at"] is not None
    assert _patch(client, lead, oid, 4, "cancelled").status_code == 422
    assert _patch(client, lead, oid, 4, "refunded").json()["status"] == "refunded"
    final = _patch(client, lead, oid, 5, "pending")
    assert final.status_code == 422
    assert final.json()["detail"].endswith("next possible: none (final)")
    row = factory.row(Order, oid)
    assert (row["status"], row["version"]) == ("refunded", 5)


def test_lines_and_amounts_are_immutable(client: TestClient, factory: Factory, shop: dict[str, int]) -> None:
    oid = factory.order(shop["customer"], status="pending")
    lead = factory.auth(factory.user("team_lead", shop["team"]))
    for body in ({"lines": []}, {"total_amount": "1"}, {"customer_id": 1}, {"currency": "USD"}, {}):
        r = client.patch(f"{API}/{oid}", json=body, headers={**lead, "If-Match": f'"{oid}.1"'})
        assert r.status_code == 422, body
    assert factory.row(Order, oid)["version"] == 1


def test_sales_rep_may_create_but_not_progress_or_delete(
    client: TestClient, factory: Factory, shop: dict[str, int]
) -> None:
    oid = factory.order(shop["customer"], status="pending")
    rep = factory.auth(shop["rep"])
    assert _patch(client, rep, oid, 1, "paid").status_code == 403
    assert client.delete(f"{API}/{oid}", headers={**rep, "If-Match": f'"{oid}.1"'}).status_code == 403
    lead = factory.auth(factory.user("team_lead", shop["team"]))
    assert client.delete(f"{API}/{oid}", headers={**lead, "If-Match": f'"{oid}.1"'}).status_code == 403
    factory.order_line(oid, shop["tea"])
    admin = factory.auth(factory.user("admin"))
    assert client.delete(f"{API}/{oid}", headers={**admin, "If-Match": f'"{oid}.1"'}).status_code == 204
    assert factory.scalar(select(func.count()).select_from(OrderLine).where(OrderLine.order_id == oid)) == 0


def test_service_rep_sees_no_costs_or_margins(
    client: TestClient, factory: Factory, shop: dict[str, int]
) -> None:
    oid = factory.order(shop["customer"], total=Decimal("100.00"))
    factory.order_line(oid, shop["tea"], quantity=1, unit_price=Decimal("100.00"))
    svc = factory.auth(factory.user("service_rep", factory.team()))
    body = client.get(f"{API}/{oid}", headers=svc).json()
    assert body["total_amount"] == "100.00"
    assert not {"cost_amount", "margin_amount"} & set(body)
    assert len(body["lines"]) == 1
    assert "unit_cost" not in body["lines"][0] and body["lines"][0]["line_total"] == "100.00"
    listed = client.get(API, headers=svc).json()["items"][0]
    assert "margin_amount" not in listed and "unit_cost" not in listed["lines"][0]
    r = client.post(
        f"/api/v1/customers/{shop['customer']}/orders",
        json=_order([{"product_id": shop["tea"], "quantity": 1}]),
        headers=svc,
    )
    assert r.status_code == 403


def test_other_team_orders_are_404(client: TestClient, factory: Factory, shop: dict[str, int]) -> None:
    north = factory.team()
    other = factory.user("sales_rep", north)
    their_customer = factory.customer(other, north)
    theirs = factory.order(their_customer)
    mine = factory.order(shop["customer"])
    h = factory.auth(shop["rep"])
    assert client.get(f"{API}/{theirs}", headers=h).status_code == 404
    r = client.post(
        f"/api/v1/customers/{their_customer}/orders",
        json=_order([{"product_id": shop["tea"], "quantity": 1}]),
        headers=h,
    )
    assert r.status_code == 404
    assert [o["id"] for o in client.get(API, headers=h).json()["items"]] == [mine]
    assert client.get(API, params={"customer_id": their_customer}, headers=h).json()["items"] == []
    lead = factory.auth(factory.user("team_lead", shop["team"]))
    assert _patch(client, lead, theirs, 1, "refunded").status_code == 404
    assert factory.row(Order, theirs)["status"] == "completed"


def test_filters_and_date_range(client: TestClient, factory: Factory, shop: dict[str, int]) -> None:
    c = shop["customer"]
    now = utcnow()
    old = factory.order(c, status="completed", channel="in_store", ordered_at=now - dt.timedelta(days=40))
    mid = factory.order(c, status="pending", channel="online", ordered_at=now - dt.timedelta(days=10))
    new = factory.order(c, status="completed", channel="online", ordered_at=now - dt.timedelta(days=1))
    h = factory.auth(shop["rep"])

    def ids(**params: object) -> list[int]:
        r = client.get(API, params=params, headers=h)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()["items"]]

    assert ids() == [new, mid, old]
    assert ids(status="completed") == [new, old]
    assert ids(channel="online", status="completed") == [new]
    since = (now - dt.timedelta(days=20)).isoformat()
    until = (now - dt.timedelta(days=5)).isoformat()
    assert ids(ordered_from=since) == [new, mid]
    assert ids(ordered_from=since, ordered_to=until) == [mid]
    assert ids(customer_id=c, sort="ordered_at") == [old, mid, new]
    r = client.get(API, params={"ordered_from": until, "ordered_to": since}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ordered_to"
    r = client.get(API, params={"ordered_from": "2024-01-01T00:00:00"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ordered_from"
