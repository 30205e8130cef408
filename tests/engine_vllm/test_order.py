"""The policy decides order inside vLLM: a short request behind eight long ones, two running at once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

pytestmark = pytest.mark.engine

LONG, SHORT = 48, 4


async def _complete(http: httpx.AsyncClient, url: str, prompt: str, tokens: int, predicted: int) -> float:
    body = {"model": "smollm2", "prompt": prompt, "max_tokens": tokens, "ignore_eos": True,
            "temperature": 0, "priority": predicted}
    resp = await http.post(url + "/v1/completions", json=body, timeout=300)
    resp.raise_for_status()
    assert resp.json()["usage"]["completion_tokens"] == tokens
    return time.monotonic()


async def _short_rank(engine) -> int:
    """Where the short request, sent last, finishes among nine (0: first)."""
    url = engine.url
    async with httpx.AsyncClient() as http:
        longs = [asyncio.create_task(_complete(http, url, f"Story {i}: once upon a time", LONG, 500))
                 for i in range(8)]
        while (await http.get(engine.control + "/stats")).json()["live"] < 8:  # all eight arrived first
            await asyncio.sleep(0.05)
        short = await _complete(http, url, "Say hi.", SHORT, 5)
        done = await asyncio.gather(*longs)
    return sum(t < short for t in done)


@pytest.mark.parametrize("policy, expect_first", [("mlfq", True), ("fcfs", False)])
def test_short_behind_eight_long(vllm_engine, policy, expect_first):
    vllm_engine.policy(name=policy, max_active=2)
    try:
        rank = asyncio.run(_short_rank(vllm_engine))
    finally:
        vllm_engine.policy(name="mlfq", max_active=None)
    if expect_first:
        assert rank == 0, f"short request finished after {rank} long ones under {policy}"
    else:
        assert rank == 8, f"short request overtook {8 - rank} long ones under FCFS"
    stats = vllm_engine.wait_idle()
    if policy == "mlfq":
        assert stats["paused"] == 0 and stats["resumes"] >= 1
