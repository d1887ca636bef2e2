"""The bulk import API: upload or JSON rows -> job, progress, rejections CSV, cancel, revert, mapping."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select

from rapport.models import Customer
from rapport.models.base import table_of
from tests.factories import Factory

CSV = (
    "客户编号,姓名,手机,邮箱\nC1,王小明,13800138000,wang@example.com\nC2,李雷,123,\nC3,韩梅梅,13700001234,\n"
)


def _headers(factory: Factory, role: str = "crm_specialist") -> dict[str, str]:
    return factory.auth(factory.user(role, team_id=factory.team()))


def test_upload_runs_the_job_and_serves_progress_and_rejections(
    client: TestClient, factory: Factory, connection: Connection
) -> None:
    auth = _headers(factory)
    options = {"mode": "upsert", "match": ["external_id", "email"], "batch_size": 2}
    res = client.post(
        "/api/v1/imports",
        headers=auth,
        files={"file": ("客户.csv", CSV.encode("gbk"), "text/csv")},
        data={"options": json.dumps(options)},
    )

    assert res.status_code == 202, res.text
    job_id = res.json()["id"]
    assert res.headers["location"] == f"/api/v1/imports/{job_id}"
    assert (res.json()["status"], res.json()["file_name"]) == ("queued", "客户.csv")
    assert "file_path" not in res.json()

    state = client.get(f"/api/v1/imports/{job_id}", headers=auth).json()
    assert {
        k: state[k]
        for k in ("status", "rows_done", "created_count", "rejected_count", "checkpoint_line", "batches_done")
    } == {
        "status": "done",
        "rows_done": 3,
        "created_count": 2,
        "rejected_count": 1,
        "checkpoint_line": 4,
        "batches_done": 2,
    }
    assert state["revertible_until"] is not None
    csv = client.get(f"/api/v1/imports/{job_id}/rejections", headers=auth)
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == [
        "\ufeffline,column,field,reason",
        "3,手机,phone,not a valid phone number for its region",
    ]

    assert client.post(f"/api/v1/imports/{job_id}/cancel", headers=auth).status_code == 409
    reverted = client.post(f"/api/v1/imports/{job_id}/revert", headers=auth)
    assert reverted.status_code == 200
    assert reverted.json()["status"] == "reverted"
    assert connection.execute(select(func.count()).select_from(table_of(Customer))).scalar_one() == 0


def test_json_rows_and_dry_run_preview(client: TestClient, factory: Factory) -> None:
    auth = _headers(factory, "team_lead")
    body = {
        "rows": [{"name": "Ada Lovelace", "email": "ADA@example.com", "tags": "vip;math"}],
        "dry_run": True,
    }
    res = client.post("/api/v1/imports", headers=auth, json=body)
    assert res.status_code == 200, res.text
    assert res.json()["rows"] == [
        {
            "line": 1,
            "outcome": "create",
            "customer_id": None,
            "changes": [],
            "errors": [],
            "values": {
                "display_name": "Ada Lovelace",
                "emails": ["ada@example.com"],
                "tags": ["vip", "math"],
            },
        }
    ]
    res = client.post("/api/v1/imports", headers=auth, json={**body, "dry_run": False})
    assert res.status_code == 202
    assert client.get(f"/api/v1/imports/{res.json()['id']}", headers=auth).json()["created_count"] == 1


def test_bad_input_gets_problem_details(client: TestClient, factory: Factory) -> None:
    auth = _headers(factory)
    res = client.post(
        "/api/v1/imports", headers=auth, json={"rows": [{"姓名": "王"}], "mapping": {"姓名": "shoe_size"}}
    )
    assert res.status_code == 422
    assert res.headers["content-type"] == "application/problem+json"
    problem = res.json()
    assert problem["status"] == 422
    assert problem["errors"][0]["field"] == "mapping.姓名"
    assert "unknown field 'shoe_size'" in problem["errors"][0]["message"]

    res = client.post(
        "/api/v1/imports", headers=auth, files={"file": ("x.exe", b"MZ", "application/octet-stream")}
    )
    assert (res.status_code, res.json()["errors"][0]["type"]) == (422, "file_type")
    res = client.post("/api/v1/imports", headers=auth, files={"file": ("x.csv", b"a,a\n1,2\n", "text/csv")})
    assert res.status_code == 422
    assert "duplicate header 'a'" in res.json()["detail"]
    res = client.post("/api/v1/imports", headers=auth, json={"rows": []})
    assert res.status_code == 422
    assert client.get("/api/v1/imports/999999", headers=auth).status_code == 404
    assert client.post("/api/v1/imports", json={"rows": [{"a": "b"}]}).status_code == 401


def test_roles_and_scope(client: TestClient, factory: Factory) -> None:
    sales = _headers(factory, "sales_rep")
    res = client.post("/api/v1/imports", headers=sales, json={"rows": [{"name": "A"}]})
    assert res.status_code == 403
    assert res.headers["content-type"] == "application/problem+json"
    mine = client.post(
        "/api/v1/imports", headers=_headers(factory, "team_lead"), json={"rows": [{"name": "A"}]}
    ).json()["id"]
    other_lead = _headers(factory, "team_lead")
    assert client.get(f"/api/v1/imports/{mine}", headers=other_lead).status_code == 404
    assert client.get(f"/api/v1/imports/{mine}", headers=_headers(factory, "admin")).status_code == 200


def test_mapping_proposal_from_chinese_headers(client: TestClient, factory: Factory) -> None:
    auth = _headers(factory)
    res = client.post(
        "/api/v1/imports/mapping",
        headers=auth,
        json={
            "headers": [
                "客户编号",
                "姓名",
                "手机号码",
                "电子邮箱",
                "微信号",
                "收货地址",
                "标签",
                "公司名称",
                "备注",
                "鞋码",
            ]
        },
    )
    assert res.status_code == 200
    assert res.json()["mapping"] == {
        "客户编号": "external_id",
        "姓名": "display_name",
        "手机号码": "phone",
        "电子邮箱": "email",
        "微信号": "wechat",
        "收货地址": "address",
        "标签": "tags",
        "公司名称": "organisation",
        "备注": "note",
        "鞋码": None,
    }
    orders = client.post(
        "/api/v1/imports/mapping",
        headers=auth,
        json={"kind": "orders", "headers": ["订单号", "下单时间", "商品编码", "数量", "单价", "手机"]},
    ).json()
    assert orders["mapping"] == {
        "订单号": "order_number",
        "下单时间": "ordered_at",
        "商品编码": "sku",
        "数量": "quantity",
        "单价": "unit_price",
        "手机": "customer_phone",
    }
