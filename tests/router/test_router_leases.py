"""Queue, leases and cancellation against a real Redis (no HTTP), and client disconnects end to end."""

import asyncio
from dataclasses import replace

import httpx
from gw_helpers import gateway, upstream, wait_for

from router import keys
from router.acker import Acker
from router.job import Job
from router.queue import QueueConfig, RedisQueue
from router.records import Outcome
from router.tenants import TenantUsage, UsageConfig


def job(jid: str, score: float, front: str = "f1") -> Job:
    return Job(
        id=jid,
        kind="completions",
        body={"prompt": jid},
        stream=True,
        include_usage=False,
        predicted=score,
        p90=score,
        predictor="heuristic",
        cls="interactive",
        tenant="t",
        prompt_hash="h",
        prefix_key="p",
        front=front,
        enqueued_at=0.0,
        enqueued_wall=0.0,
        score=score,
        bucket="all",
    )


async def test_pop_order_lease_and_reap_requeue(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=0.2))
    await q.heartbeat("f1")
    for jid, s in (("b", 20.0), ("a", 10.0), ("c", 30.0)):
        assert await q.push(job(jid, s)) > 0
    first = (await q.pop(["all"], owner="d1")).jobs[0]
    assert first.id == "a" and await redis_client.zscore(keys.LEASES, "a") is not None
    assert await redis_client.hget(keys.job("a"), "owner") == b"d1"
    await asyncio.sleep(0.3)  # the holder died: its lease expires, the job returns with its score
    assert await q.reap() == (1, 0, 0)
    assert await redis_client.zscore(keys.queue("all"), "a") == 10.0
    await q.heartbeat("f1")  # the front (another process) is still alive
    again = (await q.pop(["all"], owner="d2")).jobs[0]
    assert again.id == "a" and again.attempts == 1


async def test_batch_pop_takes_the_lowest_scores_across_buckets(redis_client):
    q = RedisQueue(redis_client, QueueConfig(buckets=("short", "long"), lease_s=5))
    await q.heartbeat("f1")
    for jid, s, bucket in (
        ("l1", 300.0, "long"),
        ("s1", 20.0, "short"),
        ("l0", 5.0, "long"),
        ("s2", 40.0, "short"),
    ):
        await q.push(replace(job(jid, s), bucket=bucket))
    assert [j.id for j in (await q.pop(["short", "long"], owner="d", count=3)).jobs] == ["l0", "s1", "s2"]
    assert [j.id for j in (await q.pop(["short"], owner="d", count=5)).jobs] == []
    assert [j.id for j in (await q.pop(["long"], owner="d", count=5)).jobs] == ["l1"]
    assert await redis_client.zcard(keys.LEASES) == 4


async def test_reaping_a_started_job_sends_an_error_event(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=0.1))
    await q.heartbeat("f1")
    await q.push(job("s", 1.0))
    await q.pop(["all"], owner="d1")
    await redis_client.hset(keys.job("s"), "started", "1")
    await asyncio.sleep(0.2)
    assert await q.reap() == (0, 1, 0)
    [(_, fields)] = await redis_client.xrange(keys.result("s"))
    assert fields[b"k"] == b"e" and b"dispatcher_lost" in fields[b"d"]
    assert not await redis_client.exists(keys.job("s"))


async def test_jobs_of_a_dead_front_are_dropped_at_pop(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=5))
    await q.heartbeat("alive")
    await q.push(job("orphan", 1.0, front="dead"))
    await q.push(job("kept", 2.0, front="alive"))
    popped = await q.pop(["all"], owner="d1")
    assert [j.id for j in popped.jobs] == ["kept"] and popped.dropped == 1
    assert not await redis_client.exists(keys.job("orphan"))


async def test_cancel_removes_queued_and_flags_leased(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=5, max_queue=2))
    await q.heartbeat("f1")
    await q.push(job("x", 1.0))
    await q.push(job("y", 2.0))
    assert await q.push(job("z", 3.0)) == -1  # full
    await q.pop(["all"], owner="d1")
    assert await q.cancel("y") == 1 and await q.depth() == 0
    assert await q.cancel("x") == 2  # leased: flagged, dispatchers told
    assert await q.renew([job("x", 1.0)], "d1") == ["x"]  # the holder learns to abandon it
    assert not await redis_client.exists(keys.job("x"))


async def test_client_disconnect_cancels_upstream_and_queued(redis_server, redis_client):
    with upstream(token_delay=0.05, max_batch=1) as up, gateway(redis_server.url, up.url, window_max=1) as gw:
        async with httpx.AsyncClient(timeout=30) as client:
            running = asyncio.create_task(
                client.post(
                    gw.url + "/v1/completions", json={"prompt": "r", "max_tokens": 200, "stream": True}
                )
            )
            await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
            queued = asyncio.create_task(client.post(gw.url + "/v1/completions", json={"prompt": "q"}))
            while await redis_client.zcard(keys.queue("all")) < 1:
                await asyncio.sleep(0.01)
            queued.cancel()
            while await redis_client.zcard(keys.queue("all")) > 0:
                await asyncio.sleep(0.01)
            running.cancel()
            await asyncio.to_thread(wait_for, lambda: up.state.cancelled == ["up-0"])
            for _ in range(100):
                if not await redis_client.zcard(keys.LEASES):
                    break
                await asyncio.sleep(0.02)
            assert await redis_client.zcard(keys.LEASES) == 0
    assert [r["prompt"] for r in up.state.received] == ["r"]


async def test_push_pop_leases_the_global_lowest_in_one_call(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=5, max_queue=3))
    await q.heartbeat("f1")
    await q.push(job("old-short", 5.0), publish=False)
    depth, popped = await q.push_pop(job("new-long", 50.0), ["all"], owner="d", count=1)
    assert depth == 2 and [j.id for j in popped.jobs] == ["old-short"]
    depth, popped = await q.push_pop(job("newest", 1.0), ["all"], owner="d", count=1)
    assert [j.id for j in popped.jobs] == ["newest"]
    await q.push(job("x", 9.0))
    await q.push(job("y", 9.0))
    assert (await q.push_pop(job("z", 0.1), ["all"], owner="d", count=1))[0] == -1
    assert await redis_client.zrange(keys.queue("all"), 0, -1) == [b"x", b"y", b"new-long"]


async def test_acker_writes_a_batch_in_one_flush(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=5))
    await q.heartbeat("f1")
    for i in range(4):
        await q.push(job(f"j{i}", float(i)))
    popped = (await q.pop(["all"], owner="d", count=4)).jobs
    acker = Acker(redis_client, q, TenantUsage(redis_client, UsageConfig(cache_s=0)), clock=lambda: 1000.0)
    for j in popped:
        acker.add(j, None if j.id == "j0" else Outcome(5, 7, "stop", 1.0, 1.5, 2.0, "http://e"))
    await acker.close()
    assert await redis_client.zcard(keys.LEASES) == 0
    assert not [k async for k in redis_client.scan_iter(match=keys.JOB_PREFIX + "*")]
    assert await redis_client.xlen(keys.RECORDS) == 3  # cancelled/failed jobs leave no record
    assert await TenantUsage(redis_client, UsageConfig(cache_s=0)).tokens("t", 1000.0) == 36
