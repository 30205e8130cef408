"""Shared bits of the operations tests: an admin client for a live gateway."""

from __future__ import annotations

import httpx

TOKEN = "test-admin-token"


def admin(url: str, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}",
                                               "X-Skipjoin-Admin": "tester"}, timeout=10)
