"""The gateway in front of the real engine (skipjoin's vLLM, the session's `vllm_engine`): OpenAI
parameters pass through and come back as vLLM answers them, errors are vLLM's own, and a Redis
restart in the middle of real traffic loses and doubles nothing."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import redis.asyncio as aredis
from gw_helpers import gateway, wait_for

from router import keys

pytestmark = pytest.mark.engine
MSGS = [{"role": "user", "content": "Name three colours in one line."}]


@pytest.fixture(scope="module")
def engine_url(vllm_engine) -> str:
    return vllm_engine.url.rstrip("/")


def _model(url: str) -> dict:
    return httpx.get(url + "/v1/models", timeout=10).json()["data"][0]


def test_parameters_pass_through_and_errors_are_the_engines(redis_server, redis_client, engine_url):
    model = _model(engine_url)
    with gateway(redis_server.url, engine_url) as gw:
        assert {m["id"] for m in httpx.get(gw.url + "/v1/models").json()["data"]} == {
            m["id"] for m in httpx.get(engine_url + "/v1/models").json()["data"]
        }
        body = {"model": model["id"], "messages": MSGS, "max_tokens": 6, "temperature": 0.8, "seed": 3}
        sampled = {**body, "n": 2, "logprobs": True, "top_logprobs": 2}
        answer = httpx.post(gw.url + "/v1/chat/completions", json=sampled, timeout=120).json()
        assert len(answer.get("choices", ())) == 2, answer
        assert len(answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 2
        greedy = {**body, "temperature": 0}
        refused = httpx.post(gw.url + "/v1/chat/completions", json={**greedy, "n": 2}, timeout=60)
        direct = httpx.post(engine_url + "/v1/chat/completions", json={**greedy, "n": 2}, timeout=60)
        assert refused.status_code == direct.status_code == 400 and refused.json() == direct.json()
        whole = httpx.post(gw.url + "/v1/chat/completions", json=greedy, timeout=120).json()
        with httpx.stream(
            "POST", gw.url + "/v1/chat/completions", json={**greedy, "stream": True}, timeout=120
        ) as r:
            lines = [x for x in r.iter_lines() if x]
        chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == whole["choices"][0]["message"]["content"], lines  # greedy: same both ways
        unknown = {"model": "no-such-model", "messages": MSGS}
        mine = httpx.post(gw.url + "/v1/chat/completions", json=unknown, timeout=60)
        theirs = httpx.post(engine_url + "/v1/chat/completions", json=unknown, timeout=60)
        assert mine.status_code == theirs.status_code == 404
        assert mine.json()["error"]["type"] == theirs.json()["error"]["type"]
        assert mine.json()["error"]["code"] == theirs.json()["error"]["code"]
        limit = model["max_model_len"]
        too_long = httpx.post(
            gw.url + "/v1/chat/completions", json={**body, "max_tokens": limit + 1}, timeout=60
        )
        assert too_long.status_code == 400 and str(limit) in too_long.json()["error"]["message"]


async def test_redis_restart_under_real_traffic(aof_redis, engine_url):
    """Redis stops while the engine streams one answer and two wait: the stream completes, new
    requests get 503 + Retry-After, and after the restart the waiting two are answered once each."""
    model = _model(engine_url)["id"]

    def ask(gw_url: str, tag: str) -> list[str]:
        body = {
            "model": model,
            "prompt": f"{tag}: count to twenty.",
            "max_tokens": 24,
            "stream": True,
            "ignore_eos": True,
            "temperature": 0,
        }
        with httpx.stream("POST", gw_url + "/v1/completions", json=body, timeout=180) as resp:
            return [x for x in resp.iter_lines() if x]

    with gateway(aof_redis.url, engine_url, window_max=1, request_timeout_s=300.0) as gw:
        probe = aredis.Redis.from_url(aof_redis.url)
        running = asyncio.create_task(asyncio.to_thread(ask, gw.url, "running"))
        while not await probe.zcard(keys.LEASES):  # dispatched
            await asyncio.sleep(0.05)
        waiting = [asyncio.create_task(asyncio.to_thread(ask, gw.url, f"waiting{i}")) for i in range(2)]
        while await probe.zcard(keys.queue("all")) < 2 and not running.done():
            await asyncio.sleep(0.05)
        await probe.aclose()
        aof_redis.stop()
        refused = await asyncio.to_thread(
            httpx.post, gw.url + "/v1/completions", json={"model": model, "prompt": "x"}, timeout=30
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        await asyncio.to_thread(wait_for, running.done, 120, 0.1)
        await asyncio.sleep(1.5)
        aof_redis.start()
        outs = await asyncio.wait_for(asyncio.gather(running, *waiting), 180)
    for lines in outs:
        chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
        assert sum(1 for c in chunks if c.get("choices")) >= 24 and lines[-1] == "data: [DONE]", lines[-2:]
