"""The four ways an accepted request could be lost or doubled (issue 13), each closed and proven:
owner-checked leases, same-process streams marked `started`, a Redis restart, acks that outlive a
Redis blip. Real Redis (restarted from its AOF) and real HTTP on loopback."""

import asyncio
import contextlib
import json

import httpx
import pytest
import redis.asyncio as aredis
from gw_helpers import control, gateway, upstream, wait_for
from test_router_leases import job

from router import keys
from router.acker import Acker
from router.events import CHUNK, DONE, Event, Inbox
from router.outage import RedisWatch
from router.queue import QueueConfig, RedisQueue
from router.records import Outcome
from router.redis_server import free_port
from router.sinks import LeaseLost, Sinks
from router.tenants import TenantUsage, UsageConfig


async def test_renew_is_owner_checked_and_a_lost_lease_stops_delivery(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=0.2))
    await redis_client.set(keys.front("f1"), b"1")  # a front that stays alive throughout
    await q.push(job("a", 1.0))
    stale = (await q.pop(["all"], owner="d1")).jobs[0]
    await asyncio.sleep(0.3)  # d1 stalls past its lease: the job goes back and d2 takes it
    assert await q.reap() == (1, 0, 0)
    fresh = (await q.pop(["all"], owner="d2")).jobs[0]
    lease = await redis_client.zscore(keys.LEASES, "a")
    assert await q.renew([stale], "d1") == ["a"]  # d1 learns it lost the job...
    assert await redis_client.zscore(keys.LEASES, "a") == lease  # ...and did not extend d2's lease
    assert await q.renew([fresh], "d2") == []
    with pytest.raises(LeaseLost):  # d1 cannot write a second copy of the answer
        await Sinks(redis_client, "d1", Inbox(), 60).for_job(stale).send(Event(CHUNK, b"{}"))
    assert not await redis_client.exists(keys.result("a"))
    await Sinks(redis_client, "d2", Inbox(), 60).for_job(fresh).send(Event(CHUNK, b"{}"))
    assert await redis_client.xlen(keys.result("a")) == 1
    assert await redis_client.hget(keys.job("a"), "started") == b"1"


async def test_a_local_stream_is_fenced_by_its_lease(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=5))
    await q.heartbeat("f1")
    await q.push(job("b", 1.0))
    mine = (await q.pop(["all"], owner="d1")).jobs[0]
    inbox = Inbox()
    box = inbox.open("b")
    await redis_client.hset(keys.job("b"), "owner", "d2")  # as if reaped and taken by d2
    with pytest.raises(LeaseLost):
        await Sinks(redis_client, "d1", inbox, 60).for_job(mine).send(Event(CHUNK, b"{}"))
    assert box.queue.empty()


def _stream(url: str, prompt: str, max_tokens: int = 20) -> list[str]:
    body = {"prompt": prompt, "max_tokens": max_tokens, "stream": True}
    with httpx.stream("POST", url + "/v1/completions", json=body, timeout=30) as resp:
        return [line for line in resp.iter_lines() if line]


def _text(lines: list[str]) -> str:
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    return "".join(c["choices"][0]["text"] for c in chunks if c.get("choices"))


FULL = "".join(f"t{i} " for i in range(20))


async def test_same_process_stream_marks_started(redis_server, redis_client):
    with upstream(token_delay=0.05) as up, gateway(redis_server.url, up.url) as gw:
        task = asyncio.create_task(asyncio.to_thread(_stream, gw.url, "local"))
        await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
        for _ in range(200):
            ids = [k async for k in redis_client.scan_iter(match=keys.JOB_PREFIX + "*")]
            if ids and await redis_client.hget(ids[0], "started") == b"1":
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("a streaming job was never marked started")
        assert _text(await task) == FULL


async def test_lost_lease_cancels_upstream(redis_server, redis_client):
    with upstream(token_delay=0.05) as up, gateway(redis_server.url, up.url) as gw:
        task = asyncio.create_task(asyncio.to_thread(_stream, gw.url, "x", 200))
        await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
        [jk] = [k async for k in redis_client.scan_iter(match=keys.JOB_PREFIX + "*")]
        while await redis_client.hget(jk, "started") is None:  # text is reaching the client
            await asyncio.sleep(0.01)
        await redis_client.hset(jk, "owner", "someone-else")
        await asyncio.to_thread(wait_for, lambda: up.state.cancelled == ["up-0"], 5)
        await redis_client.delete(jk)  # the client's front now finds the job gone: an error, no hang
        lines = await asyncio.wait_for(task, 10)
    assert '"lost"' in lines[-1] and "[DONE]" not in "".join(lines)


async def test_a_vanished_queued_job_is_queued_again(redis_server, redis_client):
    """A queued job dropped behind its live front's back (its heartbeat lapsed in a stall) is
    queued again by the front, and answered once."""
    with upstream(max_batch=1) as up, gateway(redis_server.url, up.url, window_max=1) as gw:
        held = asyncio.create_task(asyncio.to_thread(_stream, gw.url, "[hold] first"))
        await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
        dropped = asyncio.create_task(asyncio.to_thread(_stream, gw.url, "dropped"))
        while not (ids := await redis_client.zrange(keys.queue("all"), 0, -1)):
            await asyncio.sleep(0.01)
        await redis_client.zrem(keys.queue("all"), ids[0])  # as pop does for a silent front
        await redis_client.delete(keys.job(ids[0].decode()))
        await asyncio.sleep(1.5)  # the front looks (every lease_s) and queues it again
        assert await redis_client.zcard(keys.queue("all")) == 1
        control(up.url, release=True)
        for lines in await asyncio.wait_for(asyncio.gather(held, dropped), 20):
            assert _text(lines) == FULL and lines[-1] == "data: [DONE]"
    assert [r["prompt"] for r in up.state.received] == ["[hold] first", "dropped"]


async def test_redis_restart_keeps_queue_and_running_streams(aof_redis):
    """Redis stops with one stream running and two queued: new requests get 503 + Retry-After,
    the running stream completes, and after the restart the queued ones run, each once."""
    with upstream(token_delay=0.05, max_batch=1) as up, gateway(aof_redis.url, up.url, window_max=1) as gw:
        running = asyncio.create_task(asyncio.to_thread(_stream, gw.url, "running"))
        await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
        queued = [asyncio.create_task(asyncio.to_thread(_stream, gw.url, f"queued{i}")) for i in range(2)]
        probe = aredis.Redis.from_url(aof_redis.url)
        while await probe.zcard(keys.queue("all")) < 2:
            await asyncio.sleep(0.02)
        await probe.aclose()
        aof_redis.stop()
        refused = await asyncio.to_thread(
            httpx.post, gw.url + "/v1/completions", json={"prompt": "new"}, timeout=10
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "queue_unavailable"
        assert _text(await asyncio.wait_for(running, 10)) == FULL  # finished with Redis down
        await asyncio.sleep(1.5)  # longer than lease_s: every lease and heartbeat has lapsed
        aof_redis.start()
        for lines in await asyncio.wait_for(asyncio.gather(*queued), 20):
            assert _text(lines) == FULL and lines[-1] == "data: [DONE]"
        probe = aredis.Redis.from_url(aof_redis.url)
        with contextlib.suppress(AssertionError):
            await asyncio.to_thread(wait_for, lambda: False, 1.5)  # acks land; reaper settles
        assert await probe.zcard(keys.LEASES) == 0 and await probe.zcard(keys.queue("all")) == 0
        await probe.aclose()
    assert sorted(r["prompt"] for r in up.state.received) == ["queued0", "queued1", "running"]


async def test_acks_survive_a_redis_restart(aof_redis):
    client = aredis.Redis.from_url(aof_redis.url)
    q = RedisQueue(client, QueueConfig(lease_s=30))
    await q.heartbeat("f1")
    await q.push(job("done", 1.0))
    [popped] = (await q.pop(["all"], owner="d")).jobs
    acker = Acker(client, q, TenantUsage(client, UsageConfig(cache_s=0)), clock=lambda: 1000.0)
    aof_redis.stop()
    acker.add(popped, Outcome(3, 4, "stop", 1.0, 1.5, 2.0, "http://e"))
    await asyncio.sleep(1.5)  # several failed attempts
    assert [j.id for j in acker.unacked()] == ["done"]  # still held: its lease keeps being renewed
    aof_redis.start()
    await acker.close(timeout_s=10)
    assert acker.unacked() == []
    assert await client.zcard(keys.LEASES) == 0 and not await client.exists(keys.job("done"))
    assert await client.xlen(keys.RECORDS) == 1
    await client.aclose()


async def test_front_sees_done_of_a_local_job():
    """Local events reach the front without Redis (the path used while Redis is down)."""
    from router.events import read_events

    inbox = Inbox()
    box = inbox.open("j")
    box.queue.put_nowait(Event(CHUNK, b"{}"))
    box.queue.put_nowait(Event(DONE))
    dead = aredis.Redis(port=free_port())
    got = [ev.kind async for ev in read_events(box, dead, "j", 0.05, 1.0)]
    assert got == [CHUNK, DONE]
    await dead.aclose()


def test_redis_watch_settles_one_lease_after_an_outage():
    now = [100.0]
    watch = RedisWatch(settle_s=10.0, clock=lambda: now[0])
    assert watch.settled  # a fresh process trusts Redis at once
    watch.failed()
    assert not watch.settled
    now[0] += 60
    watch.ok()  # back: every live holder gets a lease to renew before anything is reaped
    assert not watch.settled
    now[0] += 10
    assert watch.settled
    with pytest.raises(ValueError):
        RedisWatch(settle_s=0)


async def test_unsettled_pop_and_renew_keep_jobs_of_silent_fronts(redis_client):
    """Just after an outage a front's heartbeat may have lapsed while it lives: its jobs are
    neither dropped at pop nor deleted at renew."""
    q = RedisQueue(redis_client, QueueConfig(lease_s=5))
    await q.push(job("quiet", 1.0, front="lapsed"))
    [popped] = (await q.pop(["all"], owner="d", drop=False)).jobs
    assert await q.renew([popped], "d", check_fronts=False) == []
    assert await redis_client.exists(keys.job("quiet"))
    assert await q.renew([popped], "d", check_fronts=True) == ["quiet"]  # settled: gone means gone
