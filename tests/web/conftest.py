"""End-to-end fixtures: the app served by uvicorn on a free port, Debian's Chromium via Playwright.

The server runs in a thread of the test process against its own SQLite file (migrated, loaded
with the deterministic demo generator plus a few known records in ``known``). ``page_as(role)``
gives a logged-in browser page for a demo user (``sales_rep`` -> sales.east; ``"sales_rep",
"north"`` -> sales.north). Screenshots: ``shot(page, "name")`` -> test-artifacts/web/name.png.
Playwright never downloads a browser: tests launch /usr/bin/chromium (installed by make setup).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from rapport import migrate
from rapport.app import create_app
from rapport.config import Settings
from rapport.db import Database, make_engine
from rapport.demo.generator import DemoConfig, load_demo
from tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
ROLE_USER = {
    "admin": "admin",
    "team_lead": "lead",
    "crm_specialist": "crm",
    "sales_rep": "sales",
    "service_rep": "service",
    "data_analyst": "analyst",
}

# The e2e tests need a browser; skip (not fail) only where none can be installed at all.
needs_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (make setup installs it)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    database: Database
    known: dict[str, Any] = field(default_factory=dict)

    def api(self, username: str) -> httpx.Client:
        """An API client authenticated as a demo user (arranging data through the real API)."""
        r = httpx.post(f"{self.url}/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        r.raise_for_status()
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )


def _arrange(server: LiveServer) -> None:
    """Known records the tests look for, created through the API like a user would."""
    with server.api("sales.east") as east, server.api("sales.north") as north:
        r = east.post(
            "/customers",
            json={
                "display_name": "欧阳娜娜",
                "family_name": "欧阳",
                "given_name": "娜娜",
                "region": "上海",
                "lifecycle_stage": "prospect",
                "contact_points": [
                    {"kind": "phone", "value": "+86 139 1234 5678", "is_primary": True},
                    {"kind": "email", "value": "nana.ouyang@example.com"},
                ],
            },
        )
        r.raise_for_status()
        server.known["east_customer"] = r.json()["id"]
        r = north.post("/customers", json={"display_name": "北方客户甲", "region": "北京"})
        r.raise_for_status()
        server.known["north_customer"] = r.json()["id"]


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    os.environ.setdefault("RAPPORT_MASTER_KEY", "ab" * 32)
    with tempfile.TemporaryDirectory(prefix="rapport-web-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'web.db'}"
        migrate.upgrade(url)
        database = Database(make_engine(url))
        with database.unit(write=True) as session:
            load_demo(session, DemoConfig(customers=300, seed=7, password=PASSWORD, workers=0))
        settings = Settings(
            data_dir=Path(tmp), secret_key="web-test-secret-" + "x" * 32, database_url=url, tune_gc=False
        )
        app = create_app(settings, database)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        live = LiveServer(base, database)
        _arrange(live)
        yield live
        server.should_exit = True
        thread.join(10)
        database.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Callable[..., Any]]:
    """Fresh browser contexts (own cookies) for this test; CSP violations and JS errors fail it."""
    contexts: list[Any] = []
    problems: list[str] = []

    def make(language: str = "zh-CN") -> Any:
        ctx = browser.new_context(
            base_url=live_server.url, locale=language, viewport={"width": 1366, "height": 860}
        )
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
        )
        return page

    yield make
    for ctx in contexts:
        ctx.close()
    # Expected 4xx answers (a 404 page, a refused login) log "Failed to load resource"; the rest counts.
    real = [p for p in problems if "Failed to load resource" not in p]
    assert real == []


@pytest.fixture
def page_as(new_page: Callable[..., Any]) -> Callable[..., Any]:
    """``page_as("sales_rep")``: a page logged in as sales.east (``team="north"`` for North)."""

    def login(role: str, team: str = "east", language: str = "zh-CN") -> Any:
        username = ROLE_USER[role] if role == "admin" else f"{ROLE_USER[role]}.{team}"
        page = new_page(language)
        page.goto("/login")
        page.fill("#f-username", username)
        page.fill("#f-password", PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url("**/")
        return page

    return login


@pytest.fixture(scope="session")
def shot() -> Callable[[Any, str], Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
