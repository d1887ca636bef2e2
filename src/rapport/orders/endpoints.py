"""Order routes: created under a customer, read and progressed at /orders."""

from __future__ import annotations

from fastapi import APIRouter

from rapport.crud import mount
from rapport.orders.service import orders

router = APIRouter()
mount(router, orders)
