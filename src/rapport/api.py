"""The /api/v1 router: every domain's endpoints, mounted in one place."""

from __future__ import annotations

from fastapi import APIRouter

from rapport.activities.endpoints import router as activities_router
from rapport.analytics.endpoints import router as analytics_router
from rapport.audit.endpoints import router as audit_router
from rapport.auth.endpoints import router as auth_router
from rapport.auth.mfa_endpoints import router as mfa_router
from rapport.auth.oidc_endpoints import router as oidc_router
from rapport.customers.endpoints import router as customers_router
from rapport.dedup.endpoints import router as dedup_router
from rapport.ingest.endpoints import router as imports_router
from rapport.merge.endpoints import router as merges_router
from rapport.orders.endpoints import router as orders_router
from rapport.organisations.endpoints import router as organisations_router
from rapport.privacy.endpoints import router as privacy_router
from rapport.privacy.portal_endpoints import router as portal_router
from rapport.privacy.request_endpoints import router as privacy_requests_router
from rapport.products.endpoints import router as products_router
from rapport.segments.endpoints import router as segments_router
from rapport.users.endpoints import router as users_router
from rapport.webhooks.endpoints import router as webhooks_router

api_router = APIRouter(prefix="/api/v1")
for r in (
    auth_router,
    mfa_router,
    oidc_router,
    customers_router,
    organisations_router,
    products_router,
    orders_router,
    activities_router,
    users_router,
    segments_router,
    merges_router,
    dedup_router,
    audit_router,
    analytics_router,
    privacy_requests_router,
    privacy_router,
    portal_router,
    webhooks_router,
    imports_router,
):
    api_router.include_router(r)
