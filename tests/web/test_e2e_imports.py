"""Browser test of the import wizard: upload a small CSV, adjust the mapping, watch the preview
change, start, and watch the job page's progress (HTMX polling) reach done."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.web.conftest import needs_browser

pytestmark = needs_browser

CSV = (
    "姓名,邮箱,手机\n"
    "导入甲,e2e.import.a@example.com,\n"
    "导入乙,e2e.import.b@example.com,123\n"
    "导入丙,e2e.import.c@example.com,\n"
)


def test_upload_a_csv_and_watch_the_import_finish(
    page_as: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    page = page_as("crm_specialist")
    page.goto("/imports")
    page.click("[data-testid=new-import]")
    page.wait_for_url("**/imports/new")
    page.set_input_files(
        "#f-file", files=[{"name": "客户.csv", "mimeType": "text/csv", "buffer": CSV.encode("utf-8")}]
    )
    page.click("[data-testid=upload]")
    page.wait_for_selector("[data-testid=mapping-form]")
    shot(page, "imports-preview")
    assert page.input_value("[data-testid=map-0]") == "display_name"
    assert page.input_value("[data-testid=map-1]") == "email"
    assert page.input_value("[data-testid=map-2]") == "phone"
    assert page.inner_text("[data-testid=count-create]").endswith(": 2")
    assert page.inner_text("[data-testid=count-reject]").endswith(": 1")
    # Ignore the phone column: the preview (HTMX) now creates all three rows.
    page.select_option("[data-testid=map-2]", "")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=count-create]').textContent.trim().endsWith(': 3')"
    )
    # Keep the phone after all, so the job has a rejected row to download.
    page.select_option("[data-testid=map-2]", "phone")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=count-reject]').textContent.trim().endsWith(': 1')"
    )
    page.click("[data-testid=start-import]")
    page.wait_for_url("**/imports/*")
    page.wait_for_selector("[data-testid=import-progress][data-status=done]", timeout=20_000)
    assert page.inner_text("[data-testid=import-created]") == "2"
    assert page.inner_text("[data-testid=import-rejected]") == "1"
    assert page.get_attribute("[data-testid=import-bar]", "value") == "100"
    assert page.is_visible("[data-testid=rejections-csv]")
    assert page.is_visible("[data-testid=revert-import]")
    shot(page, "imports-job-done")
    page.goto("/imports")
    assert "客户.csv" in page.inner_text("[data-testid=imports-table]")
    shot(page, "imports-list")
