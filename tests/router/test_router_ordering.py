"""Global order: shortest predicted first when the engine is saturated, aging, tenant fairness,
and no holding back below saturation."""

import asyncio
import random

import httpx
from gw_helpers import control, gateway, upstream, wait_for

QUEUE = "skipjoin:q:all"


def body(n_tokens: int, tag: str = "", **extra) -> dict:
    # The heuristic predictor reads "<n> tokens" as an explicit length.
    return {"prompt": f"{tag} Write {n_tokens} tokens", **extra}


async def fill_window(client: httpx.AsyncClient, gw, up, **headers) -> asyncio.Task:
    """One request held by the upstream: with window 1 everything after it queues in Redis."""
    task = asyncio.create_task(
        client.post(gw.url + "/v1/completions", json={"prompt": "[hold]", "max_tokens": 1}, headers=headers)
    )
    await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
    return task


async def queued(redis_client, n: int) -> None:
    for _ in range(500):
        if await redis_client.zcard(QUEUE) == n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"queue never reached {n}")


def arrivals(up) -> list[int]:
    return [r["priority"] for r in up.state.received[1:]]


async def test_saturated_engine_gets_shortest_predicted_first(redis_server, redis_client):
    lengths = random.Random(3).sample(range(5, 900), 20)
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, window_max=1) as gw:
        async with httpx.AsyncClient(timeout=30) as client:
            blocker = await fill_window(client, gw, up)
            tasks = [
                asyncio.create_task(client.post(gw.url + "/v1/completions", json=body(n))) for n in lengths
            ]
            await queued(redis_client, 20)
            control(up.url, release=True)
            results = await asyncio.gather(blocker, *tasks)
    assert all(r.status_code == 200 for r in results)
    assert arrivals(up) == sorted(lengths)


async def test_old_long_request_overtakes_newer_short_ones(redis_server, redis_client):
    now = [1000.0]
    with (
        upstream(max_batch=1) as up,
        gateway(redis_server.url, up.url, clock=lambda: now[0], window_max=1, aging_rate=10.0) as gw,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            blocker = await fill_window(client, gw, up)
            tasks = []
            # long at t=0; short at t=10 (credit gap 100 < 450: short first); short at t=60 (600 > 450)
            for t, n in ((0, 500), (10, 50), (60, 50)):
                now[0] = 1000.0 + t
                tasks.append(
                    asyncio.create_task(client.post(gw.url + "/v1/completions", json=body(n, f"t{t}")))
                )
                await queued(redis_client, len(tasks))
            control(up.url, release=True)
            await asyncio.gather(blocker, *tasks)
    assert [r["prompt"].split()[0] for r in up.state.received[1:]] == ["t10", "t0", "t60"]


async def test_idle_engine_gets_everything_at_once(redis_server, redis_client):
    with upstream(token_delay=0.1, max_batch=16) as up, gateway(redis_server.url, up.url) as gw:
        async with httpx.AsyncClient(timeout=30) as client:
            results = await asyncio.gather(
                *(client.post(gw.url + "/v1/completions", json=body(n, max_tokens=10)) for n in range(8))
            )
    assert all(r.status_code == 200 for r in results)
    assert up.state.max_running_seen == 8
    starts = [r["t"] for r in up.state.received]
    assert max(starts) - min(starts) < 0.5  # all arrived while the first was still generating (1 s)


async def test_heavy_tenant_queues_behind_light_tenant(redis_server, redis_client):
    keys = "kh:heavy:interactive,kl:light:interactive,kb:blocker:interactive"
    with (
        upstream(max_batch=1) as up,
        gateway(redis_server.url, up.url, window_max=1, api_keys=keys, tenant_usage_cache_s=0) as gw,
    ):
        async with httpx.AsyncClient(timeout=30) as client:
            heavy, light = {"Authorization": "Bearer kh"}, {"Authorization": "Bearer kl"}
            r = await client.post(gw.url + "/v1/completions", json=body(20, max_tokens=3000), headers=heavy)
            assert r.status_code == 200
            while not [k async for k in redis_client.scan_iter(match="skipjoin:usage:heavy:*")]:
                await asyncio.sleep(0.01)  # usage is written in batches, just after the answer
            up.state.received.clear()
            blocker = await fill_window(client, gw, up, Authorization="Bearer kb")
            first = asyncio.create_task(
                client.post(gw.url + "/v1/completions", json=body(20, "heavy"), headers=heavy)
            )
            await queued(redis_client, 1)
            second = asyncio.create_task(
                client.post(gw.url + "/v1/completions", json=body(20, "light"), headers=light)
            )
            await queued(redis_client, 2)
            control(up.url, release=True)
            await asyncio.gather(blocker, first, second)
    assert [r["prompt"].split()[0] for r in up.state.received[1:]] == ["light", "heavy"]
