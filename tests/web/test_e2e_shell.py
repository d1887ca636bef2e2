"""Browser tests of the shell: login per role, redirects, language switch, profile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.factories import PASSWORD
from tests.web.conftest import LiveServer, needs_browser

pytestmark = needs_browser


def test_login_page_and_wrong_password(
    new_page: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    page = new_page("en")
    page.goto("/customers-nowhere")
    page.goto("/profile")
    assert "/login?next=/profile" in page.url
    shot(page, "login")
    page.fill("#f-username", "sales.east")
    page.fill("#f-password", "wrong password")
    page.click("form[action='/login'] button[type=submit]")
    assert (
        page.inner_text("[data-testid=login-error]")
        == "Wrong username or password, or the account is disabled."
    )
    page.fill("#f-password", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url("**/profile")
    # Logged in, the profile's preference (zh-CN) wins over the browser's English.
    assert page.inner_text("h1") == "个人资料"


@pytest.mark.parametrize(
    "role", ["admin", "team_lead", "crm_specialist", "sales_rep", "service_rep", "data_analyst"]
)
def test_every_role_logs_in(page_as: Callable[..., Any], role: str) -> None:
    page = page_as(role)
    assert page.inner_text("[data-testid=user-menu]").endswith(("admin", ".east"))
    assert page.locator("nav a[aria-current=page]").inner_text() == "首页"


def test_home_chart_renders(page_as: Callable[..., Any], shot: Callable[[Any, str], Path]) -> None:
    page = page_as("sales_rep")
    page.wait_for_selector("[data-testid=chart-stages] canvas")
    shot(page, "home")


def test_switch_language(page_as: Callable[..., Any], shot: Callable[[Any, str], Path]) -> None:
    page = page_as("sales_rep")
    assert "欢迎" in page.inner_text("h1")
    page.click("[data-testid=language-switch]")
    page.wait_for_selector("text=Welcome, sales.east")
    page.click("[data-testid=user-menu]")
    page.click("text=Profile")
    page.wait_for_url("**/profile")
    shot(page, "profile")
    page.click("[data-testid=language-switch]")
    assert page.inner_text("h1") == "个人资料"


def test_logout(page_as: Callable[..., Any], live_server: LiveServer) -> None:
    page = page_as("service_rep")
    page.click("[data-testid=user-menu]")
    page.click("text=退出登录")
    page.wait_for_url("**/login")
    assert page.inner_text("[role=status]") == "您已退出登录。"
    page.goto("/profile")
    assert "/login?next=/profile" in page.url
