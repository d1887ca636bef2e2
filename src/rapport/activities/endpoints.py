"""Interaction and task routes: created under a customer, listed and changed at their own paths."""

from __future__ import annotations

from fastapi import APIRouter

from rapport.activities.service import interactions, tasks
from rapport.crud import mount

router = APIRouter()
mount(router, interactions)
mount(router, tasks)
