"""Opaque secrets (access/refresh tokens, API keys): generated here, stored only as digests."""

from __future__ import annotations

import hashlib
import secrets

ACCESS_PREFIX = "rat_"
REFRESH_PREFIX = "rrt_"
API_KEY_PREFIX = "rak_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
