"""No orphaned work: a non-streamed request whose client leaves, or that times out, is stopped at
the engine too (the gateway closes its connection; the engine sees the disconnect), long before the
answer would have finished. Real gateway, Redis and fake engine on loopback."""

import asyncio
import time

import httpx
from gw_helpers import gateway, upstream, wait_for

LONG = {"prompt": "a long answer", "max_tokens": 400}  # 400 tokens x 50 ms: 20 s if never stopped
STOPPED_WITHIN_S = 5.0  # generous for a loaded CI box; on a quiet one it is ~0.1 s


def _running(up) -> int:
    return sum(1 for r in up.state.received if "done" not in r)


async def test_a_client_that_leaves_stops_the_engines_work(redis_server, redis_client):
    with upstream(token_delay=0.05) as up, gateway(redis_server.url, up.url) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
            task = asyncio.create_task(client.post("/v1/completions", json=LONG))
            await asyncio.to_thread(wait_for, lambda: _running(up) == 1, 30)
            task.cancel()  # the client closes its connection mid-request
            left = time.monotonic()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.to_thread(wait_for, lambda: up.state.cancelled, STOPPED_WITHIN_S + 5)
        assert time.monotonic() - left < STOPPED_WITHIN_S
        assert up.state.cancelled == ["up-0"] and up.state.finished == [] and _running(up) == 0


async def test_a_request_that_times_out_stops_the_engines_work(redis_server, redis_client):
    with upstream(token_delay=0.05) as up, gateway(redis_server.url, up.url, request_timeout_s=1.0) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
            resp = await client.post("/v1/completions", json=LONG)
            timed_out = time.monotonic()
            assert resp.status_code == 503 and resp.json()["error"]["code"] == "timeout"
            await asyncio.to_thread(wait_for, lambda: up.state.cancelled, STOPPED_WITHIN_S + 5)
        assert time.monotonic() - timed_out < STOPPED_WITHIN_S
        assert up.state.finished == [] and _running(up) == 0
