"""Browser tests of the workspace pages: dashboard charts, lists and details per role, tasks done
with HTMX, administration (admins only) and a form error shown next to its field in zh-CN."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import LiveServer, needs_browser

pytestmark = needs_browser

ROLES = ["admin", "team_lead", "crm_specialist", "sales_rep", "service_rep", "data_analyst"]

# ECharts keeps its instance on the element; read back what was drawn.
SERIES_JS = """sel => {
  const el = document.querySelector(sel);
  const chart = window.echarts && window.echarts.getInstanceByDom(el);
  if (!chart) return null;
  return chart.getOption().series.map(s => s.data.map(d => (d && typeof d === 'object') ? d.value : d));
}"""


def series(page: Any, testid: str) -> list[list[float]]:
    page.wait_for_selector(f"[data-testid={testid}] canvas")
    data = page.evaluate(SERIES_JS, f"[data-testid={testid}]")
    assert data is not None, f"no ECharts instance on {testid}"
    return data  # type: ignore[no-any-return]


def test_dashboard_charts_render_with_data(
    page_as: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    page = page_as("admin")
    stages = series(page, "chart-stages")
    regions = series(page, "chart-regions")
    revenue = series(page, "chart-revenue")
    # Every customer is counted once in each breakdown; the demo has orders in the last year.
    total = int(page.inner_text("[data-testid=kpi-customers]").replace(",", ""))
    assert sum(stages[0]) == total == sum(regions[0])
    assert len(revenue[0]) == 12 and sum(revenue[0]) > 0 and sum(revenue[1]) > 0
    shot(page, "dashboard-admin")


def test_sales_rep_dashboard_covers_their_team(
    page_as: Callable[..., Any], live_server: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    admin = page_as("admin")
    everyone = int(admin.inner_text("[data-testid=kpi-customers]").replace(",", ""))
    page = page_as("sales_rep")
    mine = int(page.inner_text("[data-testid=kpi-customers]").replace(",", ""))
    assert 0 < mine < everyone
    assert sum(series(page, "chart-stages")[0]) == mine
    page.wait_for_selector("[data-testid=my-tasks]")
    page.wait_for_selector("[data-testid=recent-activity]")
    shot(page, "dashboard-sales-rep")


@pytest.mark.parametrize("role", ROLES)
def test_each_page_loads_per_role(
    page_as: Callable[..., Any], shot: Callable[[Any, str], Path], role: str
) -> None:
    page = page_as(role, language="zh-CN")
    for path, marker in (
        ("/tasks", "h1"),
        ("/orders", "[data-testid=orders-table]"),
        ("/organisations", "h1"),
    ):
        response = page.goto(path)
        assert response is not None and response.status == 200, (role, path)
        page.wait_for_selector(marker)
    page.goto("/orders")
    page.click("[data-testid=orders-table] tbody tr:first-child td:first-child a")
    page.wait_for_selector("[data-testid=order-total]")
    hidden = role == "service_rep"
    assert page.locator("[data-testid=order-margin]").count() == (0 if hidden else 1)
    if role in ("sales_rep", "service_rep"):
        shot(page, f"order-{role}")
    if role == "admin":
        page.goto("/organisations")
        first = page.locator("[data-testid=organisations-table] tbody tr:first-child td:first-child a")
        if first.count():
            first.click()
            page.wait_for_selector("[data-testid=organisation-facts]")
            shot(page, "organisation-admin")


@pytest.mark.parametrize("role", [r for r in ROLES if r != "admin"])
def test_administration_is_forbidden_for_others(page_as: Callable[..., Any], role: str) -> None:
    page = page_as(role)
    assert page.locator("nav a[href='/admin/users']").count() == 0
    for path in ("/admin/users", "/admin/teams", "/admin/roles", "/admin/audit"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert page.inner_text("h1") == "403 · 无权访问"


def test_admin_pages(page_as: Callable[..., Any], shot: Callable[[Any, str], Path]) -> None:
    page = page_as("admin")  # demo users prefer zh-CN, which wins over the browser's language
    page.click("nav a[href='/admin/users']")
    page.wait_for_selector("[data-testid=users-table]")
    assert page.locator("[data-testid=user-sales\\.east]").count() == 1
    shot(page, "admin-users")
    page.goto("/admin/roles")
    assert page.inner_text("[data-testid=cell-customer-sales_rep]") == "读取, 创建, 修改 (团队记录)"
    assert "cost_amount" in page.inner_text("[data-testid=cell-order-service_rep]")
    shot(page, "admin-roles")
    page.goto("/admin/teams")
    page.wait_for_selector("[data-testid=teams-table]")
    shot(page, "admin-teams")
    page.goto("/admin/audit?resource=session")
    page.wait_for_selector("[data-testid=audit-table]")
    page.click("[data-testid=verify-chain]")
    page.wait_for_selector("#chain-status .chain-ok")
    assert "哈希链完整" in page.inner_text("[data-testid=chain-status]")
    shot(page, "admin-audit")


def test_admin_disables_and_enables_a_user(page_as: Callable[..., Any]) -> None:
    page = page_as("admin")
    page.goto("/admin/users?q=analyst.north")
    page.click("[data-testid=user-analyst\\.north] a")
    page.once("dialog", lambda d: d.accept())
    page.click("[data-testid=disable-user]")
    page.wait_for_selector("text=用户 analyst.north 已停用，其会话已全部结束。")
    assert page.inner_text("[data-testid=user-status]") == "已停用"
    page.click("[data-testid=enable-user]")
    page.wait_for_selector("text=用户 analyst.north 已启用。")
    assert page.inner_text("[data-testid=user-status]") == "启用"


def test_form_error_next_to_its_field_in_chinese(
    page_as: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    page = page_as("admin", language="zh-CN")
    page.goto("/admin/users")
    page.fill("#f-username", "Bad Name!")
    page.fill("#f-email", "not-an-email")
    page.fill("#f-password", "short")
    page.click("[data-testid=create-user]")
    error = page.locator("#new-user [data-testid=error-username]")
    assert error.inner_text() == "请使用 3 到 64 个小写字母、数字、点、下划线或连字符。"
    # Next to its field: inside the field's label, and the input points at it.
    assert page.get_attribute("#new-user #f-username", "aria-describedby") == "e-username"
    assert page.get_attribute("#new-user #f-username", "aria-invalid") == "true"
    assert page.locator("#new-user [data-testid=error-email]").inner_text() == "请输入有效的电子邮箱地址。"
    assert page.input_value("#new-user #f-username") == "Bad Name!"
    assert page.input_value("#new-user #f-password") == ""
    shot(page, "form-error-zh")


def test_mark_a_task_done_with_htmx(
    page_as: Callable[..., Any], live_server: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    due = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
    with live_server.api("sales.east") as api:
        r = api.post(
            f"/customers/{live_server.known['east_customer']}/tasks",
            json={"title": "浏览器测试回访", "due_at": due, "priority": "high"},
        )
        r.raise_for_status()
        task_id = r.json()["id"]
    page = page_as("sales_rep")
    item = page.locator(f"[data-testid=task-{task_id}]")
    assert "浏览器测试回访" in item.inner_text()
    page.goto("/tasks?view=overdue")
    item = page.locator(f"[data-testid=task-{task_id}]")
    shot(page, "tasks-overdue")
    url = page.url
    item.locator(f"[data-testid=done-{task_id}]").focus()
    page.keyboard.press("Enter")  # keyboard only
    page.wait_for_selector(f"[data-testid=task-{task_id}] .done-mark")
    assert page.url == url  # swapped in place, no navigation
    with live_server.api("sales.east") as api:
        assert api.get(f"/tasks/{task_id}").json()["status"] == "done"
    page.goto("/tasks?view=overdue")
    assert page.locator(f"[data-testid=task-{task_id}]").count() == 0
