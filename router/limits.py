"""Per-tenant (so per API key) request and token rate limits, as LiteLLM's `rpm`/`tpm`.

`rpm`: requests admitted in the current minute, one Redis counter shared by every gateway (a
refused request is not counted). `tpm`: tokens (prompt + output) the tenant was served over the
tenant usage window (`tenant_window_s`, the fair-queuing books), scaled to a minute. Over either:
429 `rate_limit_exceeded` with `Retry-After`. Limits come from `SKIPJOIN_RATE_LIMITS` and change live
through `PATCH /admin/config/gateway {"rate_limits": {...}}`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis

from router.errors import ApiError
from router.tenants import TenantUsage

PREFIX = "skipjoin:rpm:"
# KEYS[1] the tenant's counter for this minute; ARGV[1] the limit. Counts only what it admits.
_ADMIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
if n > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return 0 end
return n
"""


def parse_rate_limits(text: str) -> dict[str, dict[str, int | None]]:
    """"alice:rpm=60:tpm=20000,bot:rpm=600" -> {"alice": {"rpm": 60, "tpm": 20000}, ...}."""
    out: dict[str, dict[str, int | None]] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        tenant, *pairs = entry.split(":")
        limit: dict[str, int | None] = {"rpm": None, "tpm": None}
        for pair in pairs:
            name, _, value = pair.partition("=")
            if name not in limit or not value.isdigit() or int(value) < 1:
                raise ValueError(f"rate_limits: {entry!r}: expected tenant:rpm=N:tpm=N with N >= 1")
            limit[name] = int(value)
        if not tenant:
            raise ValueError(f"rate_limits: {entry!r} names no tenant")
        out[tenant] = limit
    return out


class RateLimiter:
    def __init__(self, client: redis.Redis, usage: TenantUsage,
                 limits: Callable[[], dict[str, Any]], clock: Callable[[], float] = time.time):
        self.usage, self.limits, self.clock = usage, limits, clock
        self._admit = client.register_script(_ADMIT)

    async def admit(self, tenant: str) -> None:
        """Raise 429 when `tenant` is over its limits; else count the request."""
        limit = (self.limits() or {}).get(tenant)
        if not limit:
            return
        now = self.clock()
        retry = str(max(1, math.ceil(60 - now % 60)))  # the minute's end
        tpm = limit.get("tpm")
        if tpm:
            window = self.usage.cfg.window_s
            per_minute = await self.usage.tokens(tenant, now) * 60.0 / window
            if per_minute >= tpm:
                raise _limited(f"tenant {tenant!r} is over its {tpm} tokens per minute",
                               str(max(1, math.ceil(window / self.usage.cfg.buckets))))
        rpm = limit.get("rpm")
        if rpm and not await self._admit(keys=[f"{PREFIX}{tenant}:{int(now // 60)}"], args=[rpm]):
            raise _limited(f"tenant {tenant!r} is over its {rpm} requests per minute", retry)


def _limited(message: str, retry_after: str) -> ApiError:
    return ApiError(429, message, code="rate_limit_exceeded", headers={"Retry-After": retry_after})


async def limit_rate(request: Any, tenant: str) -> None:
    """The gateway's hook: the live limits (control plane over settings) for this request's tenant."""
    state = request.app.state
    admin = getattr(state, "admin", None)
    if admin is None or not admin.watcher.knobs.get("rate_limits"):
        return
    limiter = getattr(state, "rate_limiter", None)
    if limiter is None:
        knobs = admin.watcher
        gw = state.gateway  # the front's clock: the one the usage books are kept by
        limiter = state.rate_limiter = RateLimiter(gw.redis, admin.usage,
                                                   lambda: knobs.knobs.get("rate_limits"), gw.front.clock)
    await limiter.admit(tenant)
