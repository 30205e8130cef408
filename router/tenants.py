"""Tenant token usage over a sliding window: per-bucket counters in Redis, summed on read."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio as redis

from router import keys


@dataclass(frozen=True)
class UsageConfig:
    window_s: float = 60.0
    buckets: int = 12  # the window is approximated by this many time buckets
    cache_s: float = 1.0  # reuse a tenant's total for this long (0: read Redis every time)

    def __post_init__(self) -> None:
        if self.window_s <= 0:
            raise ValueError("tenant_window_s must be > 0")
        if self.buckets < 1:
            raise ValueError("usage buckets must be >= 1")
        if self.cache_s < 0:
            raise ValueError("tenant_usage_cache_s must be >= 0")

    @property
    def bucket_s(self) -> float:
        return self.window_s / self.buckets


def _key(tenant: str, index: int) -> str:
    return f"{keys.USAGE_PREFIX}{tenant}:{index}"


class TenantUsage:
    def __init__(self, client: redis.Redis, cfg: UsageConfig):
        self.r = client
        self.cfg = cfg
        self._cache: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, monotonic read time)

    def _index(self, now: float) -> int:
        return math.floor(now / self.cfg.bucket_s)

    async def tokens(self, tenant: str, now: float) -> float:
        """Tokens the tenant used in the last window (bucket granularity, cached `cache_s`)."""
        hit = self._cache.get(tenant)
        if hit is not None and time.monotonic() - hit[1] < self.cfg.cache_s:
            return hit[0]
        value = await self._read(tenant, now)
        if self.cfg.cache_s:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[tenant] = (value, time.monotonic())
        return value

    async def _read(self, tenant: str, now: float) -> float:
        last = self._index(now)
        values = await self.r.mget([_key(tenant, i) for i in range(last - self.cfg.buckets + 1, last + 1)])
        return float(sum(int(v) for v in values if v is not None))

    def add(self, pipe, tenant: str, tokens: int, now: float) -> None:
        key = _key(tenant, self._index(now))
        pipe.incrby(key, tokens)
        pipe.expire(key, math.ceil(self.cfg.window_s + self.cfg.bucket_s))
