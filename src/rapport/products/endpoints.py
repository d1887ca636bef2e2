"""Product catalogue routes."""

from __future__ import annotations

from fastapi import APIRouter

from rapport.crud import mount
from rapport.products.service import products

router = APIRouter()
mount(router, products)
