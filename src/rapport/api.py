"""The /api/v1 router: every domain's endpoints, mounted in one place."""

from __future__ import annotations

from fastapi import APIRouter

from rapport.auth.endpoints import router as auth_router
from rapport.customers.endpoints import router as customers_router

api_router = APIRouter(prefix="/api/v1")
for r in (auth_router, customers_router):
    api_router.include_router(r)
