"""Browser tests of the customers list and the customer 360 page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.web.conftest import LiveServer, needs_browser

pytestmark = needs_browser


def _search(page: Any, text: str) -> None:
    page.fill("[data-testid=customer-search]", text)
    page.wait_for_function(
        "t => new URLSearchParams(location.search).get('q') === t", arg=text, timeout=10_000
    )
    page.wait_for_selector("#results:not(.htmx-request)")


def test_search_chinese_name_pinyin_and_phone_with_spaces(
    page_as: Callable[..., Any], live_server: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    page = page_as("sales_rep")
    page.click("nav >> text=客户")
    page.wait_for_url("**/customers")
    assert page.locator("[data-testid=customer-row]").count() == 50
    shot(page, "customers-list")
    _search(page, "欧阳娜")
    rows = page.locator("[data-testid=customer-row]")
    assert rows.count() == 1 and "欧阳娜娜" in rows.first.inner_text()
    _search(page, "ouyang")
    assert "欧阳娜娜" in page.locator("[data-testid=customer-row]").first.inner_text()
    _search(page, "139 1234 5678")
    rows = page.locator("[data-testid=customer-row]")
    assert rows.count() == 1 and "+8613912345678" in rows.first.inner_text()
    _search(page, "nana.ouyang@example.com")
    assert page.locator("[data-testid=customer-row]").count() == 1
    shot(page, "customers-search")


def test_service_rep_sees_masked_phone(page_as: Callable[..., Any]) -> None:
    page = page_as("service_rep")
    page.goto("/customers?q=139+1234+5678")
    row = page.locator("[data-testid=customer-row]").first
    assert "139****5678" in row.inner_text()


def test_filters_sort_and_next_page(page_as: Callable[..., Any]) -> None:
    page = page_as("team_lead")
    page.goto("/customers")
    page.select_option("#f-lifecycle_stage", "prospect")
    page.wait_for_function("() => location.search.includes('lifecycle_stage=prospect')")
    page.wait_for_selector("#results:not(.htmx-request)")
    stages = page.locator("[data-testid=customer-row] .badge").all_inner_texts()
    assert stages and set(stages) == {"潜在客户"}
    page.select_option("#f-sort", "display_name")
    page.wait_for_function("() => location.search.includes('sort=display_name')")
    page.select_option("#f-lifecycle_stage", "")
    page.wait_for_function("() => !location.search.includes('lifecycle_stage=prospect')")
    page.wait_for_selector("[data-testid=next-page]")
    first = page.locator("[data-testid=customer-row]").first.inner_text()
    page.click("[data-testid=next-page]")
    page.wait_for_function("() => location.search.includes('cursor=')")
    page.wait_for_selector("#results:not(.htmx-request)")
    assert page.locator("[data-testid=customer-row]").first.inner_text() != first
    second_url = page.url
    page.click("[data-testid=prev-page]")
    page.wait_for_function(f"() => location.href !== {second_url!r}")
    page.wait_for_selector("#results:not(.htmx-request)")
    assert page.locator("[data-testid=customer-row]").first.inner_text() == first


def test_saved_view_and_bulk_tag(page_as: Callable[..., Any], shot: Callable[[Any, str], Path]) -> None:
    page = page_as("team_lead")
    page.goto("/customers?lifecycle_stage=prospect&sort=display_name")
    page.click("text=保存视图")
    page.fill("[data-testid=view-name]", "我的潜在客户")
    page.click(".save-view-form button[type=submit]")
    page.wait_for_selector("[data-testid=views-menu]")
    page.goto("/customers")
    page.click("[data-testid=views-menu]")
    page.click("text=我的潜在客户")
    page.wait_for_function("() => location.search.includes('lifecycle_stage=prospect')")
    boxes = page.locator("[data-testid=customer-row] input[name=ids]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.fill("[data-testid=bulk-tag]", "春季活动")
    page.click("[data-testid=bulk-apply]")
    page.wait_for_selector("[data-testid=bulk-message]")
    assert page.inner_text("[data-testid=bulk-message]") == "2 位客户已更改。"
    shot(page, "customers-bulk")
    page.fill("#f-tag", "春季活动")
    page.press("#f-tag", "Enter")
    page.wait_for_function("() => location.search.includes('tag=')")
    page.wait_for_selector("#results:not(.htmx-request)")
    assert page.locator("[data-testid=customer-row]").count() == 2


def test_360_add_note_and_task(
    page_as: Callable[..., Any], live_server: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    page = page_as("sales_rep")
    page.goto("/customers?q=欧阳娜娜")
    page.click("text=欧阳娜娜")
    page.wait_for_selector("[data-testid=customer-name]")
    assert page.inner_text("[data-testid=customer-name]") == "欧阳娜娜"
    assert "+8613912345678" in page.inner_text("[data-testid=contact-points]")
    page.click("[data-testid=save-note]")  # empty note: a field error, in Chinese
    page.wait_for_selector("[data-testid=error-body]")
    assert page.inner_text("[data-testid=error-body]") == "此项为必填项。"
    page.fill("#note-body", "客户询问春季新品，下周回电。")
    page.click("[data-testid=save-note]")
    page.wait_for_selector("[data-testid=activity-saved]")
    first = page.locator("[data-testid=timeline-item]").first.inner_text()
    assert "客户询问春季新品，下周回电。" in first and "备注" in first
    page.click("[data-testid=open-task]")
    page.fill("#task-title", "回电确认新品需求")
    page.fill("#task-due", "2030-01-15")
    page.click("[data-testid=save-task]")
    page.wait_for_selector("text=任务已创建。")
    assert "回电确认新品需求" in page.inner_text("[data-testid=timeline]")
    assert "回电确认新品需求" in page.inner_text("[data-testid=open-tasks]")  # refreshed out of band
    shot(page, "customer-360")


def test_360_edit_with_concurrent_conflict(
    page_as: Callable[..., Any], live_server: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    cid = live_server.known["east_customer"]
    page = page_as("sales_rep")
    page.goto(f"/customers/{cid}")
    page.click("[data-testid=edit-profile]")
    page.wait_for_selector("[data-testid=profile-form]")
    page.fill("#f-occupation", "设计师")
    # Meanwhile a colleague changes the same customer through the API.
    with live_server.api("lead.east") as lead:
        etag = lead.get(f"/customers/{cid}").headers["etag"]
        r = lead.patch(f"/customers/{cid}", json={"occupation": "教师"}, headers={"If-Match": etag})
        assert r.status_code == 200, r.text
    page.click("[data-testid=save-profile]")
    page.wait_for_selector("[data-testid=conflict]")
    assert page.input_value("#f-occupation") == "设计师"  # the user's input is kept
    assert page.inner_text("[data-testid=conflict-occupation]") == "当前保存的值：教师"
    shot(page, "customer-360-conflict")
    page.click("[data-testid=save-profile]")  # saving again keeps the user's value
    page.wait_for_selector("[data-testid=profile-saved]")
    assert page.inner_text("[data-field=occupation]") == "设计师"


def test_360_field_error_next_to_the_field(page_as: Callable[..., Any], live_server: LiveServer) -> None:
    cid = live_server.known["east_customer"]
    page = page_as("sales_rep", language="en")
    page.click("[data-testid=language-switch]")  # to English
    page.goto(f"/customers/{cid}")
    page.click("[data-testid=edit-profile]")
    page.fill("#f-display_name", "")
    page.click("[data-testid=save-profile]")
    page.wait_for_selector("[data-testid=error-display_name]")
    assert page.inner_text("[data-testid=error-display_name]") == "This field is required."


def test_sales_rep_cannot_open_another_teams_customer(
    page_as: Callable[..., Any], live_server: LiveServer, shot: Callable[[Any, str], Path]
) -> None:
    page = page_as("sales_rep")  # East
    response = page.goto(f"/customers/{live_server.known['north_customer']}")
    assert response is not None and response.status == 404
    assert page.inner_text("[data-testid=error-page] h1") == "404 · 未找到"
    shot(page, "not-found")
    # The North rep can.
    north = page_as("sales_rep", team="north")
    north.goto(f"/customers/{live_server.known['north_customer']}")
    assert north.inner_text("[data-testid=customer-name]") == "北方客户甲"


def test_analyst_sees_no_names_or_contacts(page_as: Callable[..., Any], live_server: LiveServer) -> None:
    page = page_as("data_analyst")
    page.goto(f"/customers/{live_server.known['east_customer']}")
    assert page.inner_text("[data-testid=customer-name]") == f"#{live_server.known['east_customer']}"
    assert "+8613912345678" not in page.content()
    assert "欧阳" not in page.content()
