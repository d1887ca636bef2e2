"""Static files: the workspace's own CSS/JS, and the few npm dist files it needs.

Front-end packages are installed by ``npm ci`` (``make setup``) into ``node_modules`` at the
repository root (or ``RAPPORT_NODE_MODULES``); nothing is copied into git and nothing is loaded
from a CDN. Only the files listed in :data:`VENDOR` are served, under ``/static/vendor/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from rapport.errors import NotFound

APP_STATIC = Path(__file__).parent / "static"

# URL name under /static/vendor/ -> path inside node_modules.
VENDOR: dict[str, str] = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "alpine-csp.min.js": "@alpinejs/csp/dist/cdn.min.js",
    "echarts.min.js": "echarts/dist/echarts.min.js",
    "sortable.min.js": "sortablejs/Sortable.min.js",
    "pico.min.css": "@picocss/pico/css/pico.min.css",
    "swagger-ui/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "swagger-ui/favicon-32x32.png": "swagger-ui-dist/favicon-32x32.png",
}
_MEDIA = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
_CACHE = "public, max-age=86400"


def node_modules() -> Path:
    """``RAPPORT_NODE_MODULES``, else the first ``node_modules`` above this package or the cwd."""
    configured = os.environ.get("RAPPORT_NODE_MODULES")
    if configured:
        return Path(configured)
    for base in (Path(__file__).resolve(), Path.cwd().resolve() / "x"):
        for parent in base.parents:
            candidate = parent / "node_modules"
            if (candidate / "htmx.org").is_dir():
                return candidate
    return Path.cwd() / "node_modules"


_ROOT = node_modules()

vendor_router = APIRouter(include_in_schema=False)


@vendor_router.get("/static/vendor/{name:path}")
def vendor_file(name: str) -> Response:
    rel = VENDOR.get(name)
    path = _ROOT / rel if rel else None
    if path is None or not path.is_file():
        raise NotFound(f"static file {name} not found (run `make setup` to install the front-end packages)")
    return FileResponse(path, media_type=_MEDIA.get(path.suffix), headers={"Cache-Control": _CACHE})


def app_static() -> StaticFiles:
    return StaticFiles(directory=APP_STATIC)


DOCS_URL = "/api/v1/docs"


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /api/v1/docs from the npm package swagger-ui-dist (served above)."""
    oauth2_url = DOCS_URL + "/oauth2-redirect"
    openapi_url = app.openapi_url or "/api/v1/openapi.json"

    def docs(request: Request) -> Response:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_url,
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        )

    def oauth2_redirect(request: Request) -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    # Plain Starlette routes, as FastAPI's own docs routes are: not API operations.
    app.router.add_route(DOCS_URL, docs, methods=["GET"], include_in_schema=False)
    app.router.add_route(oauth2_url, oauth2_redirect, methods=["GET"], include_in_schema=False)
