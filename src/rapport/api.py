"""The /api/v1 router: every domain's endpoints, mounted in one place."""

from __future__ import annotations

from fastapi import APIRouter

from rapport.activities.endpoints import router as activities_router
from rapport.audit.endpoints import router as audit_router
from rapport.auth.endpoints import router as auth_router
from rapport.customers.endpoints import router as customers_router
from rapport.orders.endpoints import router as orders_router
from rapport.organisations.endpoints import router as organisations_router
from rapport.products.endpoints import router as products_router
from rapport.segments.endpoints import router as segments_router
from rapport.users.endpoints import router as users_router

api_router = APIRouter(prefix="/api/v1")
for r in (
    auth_router,
    customers_router,
    organisations_router,
    products_router,
    orders_router,
    activities_router,
    users_router,
    segments_router,
    audit_router,
):
    api_router.include_router(r)
