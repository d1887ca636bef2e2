from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.models import Product
from rapport.products import repository
from tests.factories import Factory

API = "/api/v1/products"


def _new(**kw: object) -> dict[str, object]:
    return {"sku": "TEA-001", "name": "龙井茶 250g", "list_price": "128.00", "unit_cost": "52.5", **kw}


def test_create_normalises_money_and_defaults(client: TestClient, factory: Factory) -> None:
    h = factory.auth(factory.user("crm_specialist"))
    r = client.post(API, json=_new(list_price="1e2", category="茶叶"), headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sku"] == "TEA-001"
    assert (body["list_price"], body["unit_cost"], body["currency"], body["is_active"]) == (
        "100.00",
        "52.50",
        "CNY",
        True,
    )
    row = factory.row(Product, body["id"])
    assert row["list_price"] == Decimal("100.00") and row["unit_cost"] == Decimal("52.50")


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"list_price": "0"}, "list_price"),
        ({"list_price": "-1"}, "list_price"),
        ({"list_price": "12.345"}, "list_price"),
        ({"list_price": "NaN"}, "list_price"),
        ({"list_price": "10000000000.00"}, "list_price"),
        ({"list_price": True}, "list_price"),
        ({"unit_cost": "-0.01"}, "unit_cost"),
        ({"currency": "cny"}, "currency"),
        ({"currency": "RMB1"}, "currency"),
        ({"sku": "TEA 001"}, "sku"),
        ({"sku": ""}, "sku"),
        ({"name": "   "}, "name"),
        ({"version": 3}, "version"),
    ],
)
def test_bad_product_input_is_422(
    client: TestClient, factory: Factory, patch: dict[str, object], field: str
) -> None:
    h = factory.auth(factory.user("admin"))
    r = client.post(API, json=_new(**patch), headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert factory.scalar(select(func.count()).select_from(Product).where(Product.sku == "TEA-001")) == 0


def test_duplicate_sku_is_409_on_create_and_update(client: TestClient, factory: Factory) -> None:
    existing = factory.product(sku="TEA-001")
    other = factory.product(sku="TEA-002")
    h = factory.auth(factory.user("admin"))
    r = client.post(API, json=_new(), headers=h)
    assert r.status_code == 409
    assert r.json()["detail"] == f"SKU 'TEA-001' is already used by product {existing}"
    assert r.json()["errors"][0]["field"] == "sku"
    r = client.patch(f"{API}/{other}", json={"sku": "TEA-001"}, headers={**h, "If-Match": f'"{other}.1"'})
    assert r.status_code == 409
    assert factory.row(Product, other)["sku"] == "TEA-002"
    # Re-sending its own SKU is not a conflict.
    r = client.patch(
        f"{API}/{existing}",
        json={"sku": "TEA-001", "name": "新"},
        headers={**h, "If-Match": f'"{existing}.1"'},
    )
    assert r.status_code == 200 and r.json()["name"] == "新"


def test_sku_race_lost_at_the_unique_index_is_still_409(
    client: TestClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.product(sku="TEA-001")
    # Simulate a concurrent insert that committed between our check and our insert.
    monkeypatch.setattr(repository, "sku_owner", lambda conn, sku: None)
    h = factory.auth(factory.user("admin"))
    r = client.post(API, json=_new(), headers=h)
    assert r.status_code == 409, r.text
    assert r.json()["detail"] == "SKU 'TEA-001' is already used by another product"
    assert factory.scalar(select(func.count()).select_from(Product).where(Product.sku == "TEA-001")) == 1


def test_only_catalogue_roles_write(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    pid = factory.product()
    for role in ("sales_rep", "service_rep", "data_analyst", "team_lead"):
        h = factory.auth(factory.user(role, team))
        assert client.post(API, json=_new(), headers=h).status_code == 403, role
        r = client.patch(f"{API}/{pid}", json={"name": "x"}, headers={**h, "If-Match": f'"{pid}.1"'})
        assert r.status_code == 403, role
    specialist = factory.auth(factory.user("crm_specialist"))
    r = client.delete(f"{API}/{pid}", headers={**specialist, "If-Match": f'"{pid}.1"'})
    assert r.status_code == 403


def test_service_rep_never_sees_unit_cost(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    pid = factory.product(unit_cost=Decimal("40.00"))
    svc = factory.auth(factory.user("service_rep", team))
    one = client.get(f"{API}/{pid}", headers=svc).json()
    assert "unit_cost" not in one and one["list_price"] == "99.00"
    listed = client.get(API, headers=svc).json()["items"]
    assert [p["id"] for p in listed] == [pid] and "unit_cost" not in listed[0]
    assert client.get(API, params={"sort": "unit_cost"}, headers=svc).status_code == 422
    rep = factory.auth(factory.user("sales_rep", team))
    assert client.get(f"{API}/{pid}", headers=rep).json()["unit_cost"] == "40.00"


def test_filters(client: TestClient, factory: Factory) -> None:
    tea = factory.product(sku="TEA-9", name="Oolong", category="tea")
    mug = factory.product(sku="MUG-1", name="Tea mug", category="ware")
    old = factory.product(sku="TEA-1", name="Puer", category="tea", is_active=False)
    h = factory.auth(factory.user("sales_rep", factory.team()))

    def ids(**params: object) -> list[int]:
        r = client.get(API, params={"sort": "id", **params}, headers=h)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert ids(category="tea") == [tea, old]
    assert ids(category="tea", is_active="true") == [tea]
    assert ids(is_active="false") == [old]
    assert ids(q="TEA-") == [tea, old]
    assert ids(q="Tea m") == [mug]
    assert ids(q="MUG") == [mug]
    assert client.get(API, params={"is_active": "maybe"}, headers=h).status_code == 422
    default_order = client.get(API, headers=h).json()["items"]
    assert [p["name"] for p in default_order] == ["Oolong", "Puer", "Tea mug"]


def test_delete_refused_while_on_orders(client: TestClient, factory: Factory) -> None:
    team = factory.team()
    rep = factory.user("sales_rep", team)
    used = factory.product()
    unused = factory.product()
    factory.order_line(factory.order(factory.customer(rep, team)), used)
    h = factory.auth(factory.user("admin"))
    r = client.delete(f"{API}/{used}", headers={**h, "If-Match": f'"{used}.1"'})
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"product {used} appears on orders and cannot be deleted; "
        "set is_active to false to withdraw it from sale"
    )
    stale = client.delete(f"{API}/{unused}", headers={**h, "If-Match": f'"{unused}.5"'})
    assert stale.status_code == 412
    assert client.delete(f"{API}/{unused}", headers={**h, "If-Match": f'"{unused}.1"'}).status_code == 204
    assert factory.scalar(select(func.count()).select_from(Product).where(Product.id == unused)) == 0
    assert client.delete(f"{API}/{unused}", headers={**h, "If-Match": f'"{unused}.1"'}).status_code == 404


def test_products_filter_by_category_and_status(client: TestClient, factory: Factory) -> None:
    admin = factory.user("admin", factory.team())
    tea = factory.product(category="茶叶")
    old_tea = factory.product(category="茶叶", is_active=False)
    factory.product(category="茶具")
    h = factory.auth(admin)
    r = client.get("/api/v1/products", params={"category": "茶叶", "sort": "id"}, headers=h)
    assert [p["id"] for p in r.json()["items"]] == [tea, old_tea]
    r = client.get("/api/v1/products", params={"category": "茶叶", "is_active": "false"}, headers=h)
    assert [p["id"] for p in r.json()["items"]] == [old_tea]
