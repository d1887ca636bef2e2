"""Application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rapport import __version__
from rapport.api import api_router
from rapport.config import Settings, get_settings
from rapport.db import Database, make_engine
from rapport.errors import install_error_handlers
from rapport.ingest import tasks as import_tasks
from rapport.middleware import RequestContextMiddleware, SecurityHeadersMiddleware
from rapport.pagination import CursorCodec
from rapport.privacy.outbox import DevOutbox, Notifier
from rapport.privacy.portal_endpoints import NoStoreMiddleware, privacy_page
from rapport.security import crypto, outbound
from rapport.security.ratelimit import LoginThrottle
from rapport.web import install as install_web
from rapport.web.static import install_docs


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections: a request allocates thousands of short-lived objects.

    Objects alive at start-up (modules, routes, compiled statements) are frozen out of every
    future collection, and the youngest generation is collected less often.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(50_000, gen1, gen2)


def pseudonym_key(settings: Settings) -> bytes:
    """Key of the analysts' pseudonyms: its own setting, or derived from the secret key."""
    if settings.pseudonym_key:
        return settings.pseudonym_key.encode()
    return hmac.new(
        settings.resolved_secret_key().encode(), b"rapport pseudonym key v1", hashlib.sha256
    ).digest()


def create_app(
    settings: Settings | None = None, database: Database | None = None, notifier: Notifier | None = None
) -> FastAPI:
    settings = settings or get_settings()
    crypto.configure_from_settings(settings)  # the master key is read on first use
    if database is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(make_engine(settings.resolved_database_url))
    db = database

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Imports a previous run of the server left "running" become interrupted (resumable).
        await run_in_threadpool(import_tasks.sweep, db, settings)
        sweeper = None
        if settings.import_sweep_seconds > 0:
            sweeper = asyncio.create_task(import_tasks.sweep_forever(db, settings))
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper

    app = FastAPI(
        lifespan=lifespan,
        title="Rapport",
        version=__version__,
        summary="Self-hosted CRM: customer 360, service, sales, analytics, privacy by design.",
        openapi_url="/api/v1/openapi.json",
        # Served below from the npm package swagger-ui-dist (no CDN: Rapport works offline).
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.cursors = CursorCodec(settings.resolved_secret_key())
    app.state.pseudonym_key = pseudonym_key(settings)
    app.state.throttle = LoginThrottle(settings.login_max_failures, settings.login_window_seconds)
    # Messages to customers (privacy-portal codes); the development outbox only stores and logs.
    app.state.notifier = notifier or DevOutbox()
    install_error_handlers(app)
    app.add_middleware(NoStoreMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    # Added last, so outermost: problem responses of the inner middleware get the headers too.
    app.add_middleware(SecurityHeadersMiddleware, hsts_seconds=settings.hsts_seconds)
    outbound.set_allowed_networks(settings.outbound_allow_networks)
    app.include_router(api_router)
    # PUBLIC: the customers' privacy page (no staff credentials; see privacy/portal_endpoints.py).
    app.add_api_route("/privacy", privacy_page, methods=["GET"], include_in_schema=False)
    install_docs(app)
    # The web workspace: pages on the same services and data-access layer (src/rapport/web).
    install_web(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    logging.getLogger("rapport").setLevel(logging.INFO)
    if settings.tune_gc:
        _tune_gc()
    return app
