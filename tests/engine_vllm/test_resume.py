"""Paused and evicted requests resume with token-for-token identical greedy output."""

from __future__ import annotations

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.engine

PARAGRAPH = ("The harbour town woke slowly; fishermen mended nets, a baker lit her ovens, and gulls argued "
             "over the quay while the tide turned. ")


def _body(prompt: str, tokens: int, predicted: int) -> dict:
    return {"model": "smollm2", "prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True,
            "priority": predicted, "return_token_ids": True}


async def _tokens(http: httpx.AsyncClient, url: str, body: dict, delay: float = 0.0) -> list[int]:
    await asyncio.sleep(delay)
    resp = await http.post(url + "/v1/completions", json=body, timeout=600)
    resp.raise_for_status()
    return resp.json()["choices"][0]["token_ids"]


async def _solo_then_together(url: str, bodies: list[dict], delays: list[float]):
    async with httpx.AsyncClient() as http:
        alone = [await _tokens(http, url, b) for b in bodies]
        runs = (_tokens(http, url, b, d) for b, d in zip(bodies, delays, strict=True))
        together = await asyncio.gather(*runs)
    return alone, together


def test_paused_requests_resume_exactly(vllm_engine):
    """One slot: each later, much shorter request pauses the one running (a pause must pay: the
    policy compares the victim's remaining work with the newcomer's)."""
    lengths, predicted = [120, 48, 8, 8], [400, 50, 8, 8]
    pairs = enumerate(zip(lengths, predicted, strict=True))
    bodies = [_body(f"Note {i}. {PARAGRAPH}", n, p) for i, (n, p) in pairs]
    before = vllm_engine.stats()
    vllm_engine.policy(max_active=1)
    try:
        alone, together = asyncio.run(_solo_then_together(vllm_engine.url, bodies, [0.0, 1.0, 2.0, 3.0]))
    finally:
        vllm_engine.policy(max_active=None)
    after = vllm_engine.wait_idle()
    assert after["paused"] == 0
    assert after["resumes"] > before["resumes"], "nothing was paused and resumed"
    assert together == alone


def test_evicted_requests_recompute_exactly(vllm_engine):
    """Six ~1,300-token prompts fit the 8,192 KV tokens; growing by 100 tokens each, they do not:
    the policy evicts (paused first, then its worst runner) and the victims recompute."""
    bodies = [_body(f"Chapter {i}. " + PARAGRAPH * 52, 100, 100 + i) for i in range(6)]
    before = vllm_engine.stats()
    alone, together = asyncio.run(_solo_then_together(vllm_engine.url, bodies, [0.2 * i for i in range(6)]))
    after = vllm_engine.wait_idle()
    assert after["evictions"] > before["evictions"], "the KV never ran short: no eviction happened"
    assert after["kv_usage"] == 0.0
    assert together == alone
