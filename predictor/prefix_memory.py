"""The last probed prediction per prompt prefix, kept in Redis for every gateway replica.

When the gateway skips the prefill probe (nothing waits in the queue, so order does not matter, or
the `inline` predictor, which never probes), a request whose prompt starts like an earlier probed
one gets that prediction instead of the heuristic (the engine fills entries for inline requests):
a shared system prompt or a continued conversation says much about the answer's length.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MEMORY_PREFIX = "skipjoin:predprefix"
PREFIX_CHARS = 256  # as the gateway's prefix affinity (router.front)


def prefix_hash(prompt_text: str, chars: int = PREFIX_CHARS) -> str:
    return hashlib.blake2b(prompt_text[:chars].encode(), digest_size=12).hexdigest()


def memory_key(prefix: str, version: int) -> str:
    """The entry of one prefix hash under one model version (the engine writes these too)."""
    return f"{MEMORY_PREFIX}:v{version}:{prefix}"


def memory_entry(length: float, p90: float) -> str:
    return json.dumps({"length": length, "p90": p90})


class PrefixMemory:
    def __init__(self, redis: Any, ttl_s: float, chars: int = PREFIX_CHARS):
        if ttl_s <= 0 or chars < 1:
            raise ValueError("ttl_s must be > 0 and chars >= 1")
        self.redis, self.ttl_ms, self.chars = redis, int(ttl_s * 1000), chars

    def key(self, prompt_text: str, version: int) -> str:
        return memory_key(self.prefix(prompt_text), version)

    def prefix(self, prompt_text: str) -> str:
        return prefix_hash(prompt_text, self.chars)

    async def get(self, prompt_text: str, version: int) -> tuple[float, float] | None:
        """(length, p90) uncapped, or None when no prompt with this prefix was probed."""
        raw = await self.redis.get(self.key(prompt_text, version))
        if raw is None:
            return None
        d = json.loads(raw)
        return float(d["length"]), float(d["p90"])

    async def put(self, prompt_text: str, version: int, length: float, p90: float) -> None:
        await self.redis.set(self.key(prompt_text, version), memory_entry(length, p90), px=self.ttl_ms)
