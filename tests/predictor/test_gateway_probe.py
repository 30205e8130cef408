"""Through the real gateway: no prefill probe while nothing waits in the queue, a probe once
something does (the predictor reads the queue depth the gateway injects)."""

import asyncio
import json
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "router"))
from gw_helpers import ServerThread, gateway_settings, upstream, wait_for  # noqa: E402

from router.app import create_app  # noqa: E402

BODY = {
    "model": "upstream-model",
    "messages": [{"role": "user", "content": "Explain tides in detail."}],
    "max_tokens": 4,
}


def probes(received) -> list:
    return [r for r in received if "vllm_xargs" in r["body"]]


async def test_the_gateway_probes_only_when_a_request_waits(redis_server, redis_client):
    # No dispatcher: what the front queues stays queued, so the second request finds one waiting.
    with (
        upstream() as up,
        ServerThread(create_app(_settings(redis_server.url, up.url))) as gw,
    ):
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            first = asyncio.create_task(client.post("/v1/chat/completions", json=BODY))
            await asyncio.to_thread(wait_for, lambda: _queued(redis_server.url) == 1)
            assert probes(up.state.received) == []
            second = asyncio.create_task(client.post("/v1/chat/completions", json=BODY | {"max_tokens": 5}))
            await asyncio.to_thread(wait_for, lambda: len(probes(up.state.received)) == 1)
            sources = _queued_predictions(redis_server.url)
            first.cancel(), second.cancel()
            await asyncio.gather(first, second, return_exceptions=True)
    # Idle: the shipped model's hidden state was not read; waiting: it was (the fake engine sends no
    # hidden state, so the heuristic answers, but the probe went out and its cost was recorded).
    assert sorted(sources, key=str) == [("heuristic", "idle"), ("heuristic", None)]
    [probe] = probes(up.state.received)
    sent = probe["body"]
    assert sent["messages"] == BODY["messages"] and json.dumps(sent).count("skipjoin_probe") == 1


def _settings(redis_url: str, engine_url: str):
    # No sampled probes (they keep other models learning): only the queue decides here.
    return gateway_settings(redis_url, engine_url, predictor="auto", train=False, dispatch=False,
                            predictor_prefill_sample_rate=0.0)


def _queued(url: str) -> int:
    import redis

    from router import keys

    r = redis.Redis.from_url(url)
    try:
        return sum(r.zcard(k) for k in r.scan_iter(match=keys.queue("*")))
    finally:
        r.close()


def _queued_predictions(url: str) -> list[tuple[str, str | None]]:
    import redis

    from router import keys
    from router.job import Job

    r = redis.Redis.from_url(url)
    try:
        jobs = [Job.loads(r.hget(k, "payload")) for k in r.scan_iter(match=keys.job("*"))]
    finally:
        r.close()
    return [(j.predictor, j.features.get("probe_skipped")) for j in jobs]
