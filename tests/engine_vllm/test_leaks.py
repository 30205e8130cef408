"""No block, paused slot or policy entry outlives its request: 1,000 mixed requests with pauses,
evictions and client cancels leave the engine empty."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

pytestmark = pytest.mark.engine
WORDS = ["sea", "stone", "river", "lamp", "cloud", "bread"]


async def _one(http: httpx.AsyncClient, url: str, rng: random.Random, i: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
    long = rng.random() < 0.06  # long answers hold the few slots; short newcomers pause them
    body = {"model": "smollm2", "prompt": f"{i}: {words}", "max_tokens": 40 if long else rng.randint(1, 8),
            "ignore_eos": True, "temperature": 0.8, "priority": 2000 if long else rng.choice([2, 8, 20]),
            "stream": True}
    cancel_after = rng.randint(1, 3) if rng.random() < 0.15 else None
    async with http.stream("POST", url + "/v1/completions", json=body, timeout=900) as resp:
        assert resp.status_code == 200
        chunks = 0
        async for line in resp.aiter_lines():
            if line.startswith("data:"):
                chunks += 1
                if cancel_after is not None and chunks >= cancel_after:
                    return "cancelled"  # leaving the block closes the connection: vLLM aborts it
    return "done"


async def _storm(url: str, n: int, concurrency: int) -> dict[str, int]:
    rng = random.Random(7)
    sem = asyncio.Semaphore(concurrency)
    counts = {"done": 0, "cancelled": 0}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency + 8)) as http:
        async def run(i: int) -> None:
            async with sem:
                counts[await _one(http, url, rng, i)] += 1

        await asyncio.gather(*(run(i) for i in range(n)))
    return counts


def test_thousand_mixed_requests_leave_nothing_behind(vllm_engine):
    before = vllm_engine.stats()
    vllm_engine.policy(max_active=4)
    try:
        counts = asyncio.run(_storm(vllm_engine.url, 1000, 48))
    finally:
        vllm_engine.policy(max_active=None)
    assert counts["done"] + counts["cancelled"] == 1000 and counts["cancelled"] > 50
    after = vllm_engine.wait_idle(timeout=120)
    assert after["live"] == 0 and after["paused"] == 0
    assert after["kv_usage"] == 0.0
    assert after["resumes"] > before["resumes"], "no request was paused along the way"
