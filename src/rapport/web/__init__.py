"""The web workspace: server-rendered pages (Jinja2 + HTMX) on the same app, services and access layer.

Adding a page: write a module with ``router = page_router()`` and handlers taking ``ctx: Page``,
register its navigation entry with ``register_nav``, and list the router in :data:`PAGE_ROUTERS`.
"""

from __future__ import annotations

from fastapi import FastAPI

from rapport.web import (
    admin_pages,
    auth_pages,
    customers,
    dashboard_pages,
    dedup_pages,
    home,
    import_pages,
    mfa_pages,
    work_pages,
)
from rapport.web.static import app_static, vendor_router

# dashboard_pages comes before home: its role dashboard answers "/" (home.py's page is the fallback).
PAGE_ROUTERS = [
    auth_pages.router,
    mfa_pages.router,
    dashboard_pages.router,
    home.router,
    customers.router,
    work_pages.router,
    import_pages.router,
    dedup_pages.router,
    admin_pages.router,
]


def install(app: FastAPI) -> None:
    """Mount the pages and static files on ``app`` (none of it appears in the OpenAPI schema)."""
    app.mount("/static/app", app_static(), name="web-static")
    app.include_router(vendor_router)
    for router in PAGE_ROUTERS:
        app.include_router(router)
