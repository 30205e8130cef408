"""A stream relayed through Redis (the client's gateway is not the one that dispatched it) ends with
an error within seconds, never a hang, when its job vanishes with nothing more written, or when
Redis freezes (SIGSTOP) or dies mid-stream. Real Redis processes, real gateways on loopback."""

import asyncio
import json
import os
import signal
import time

import httpx
from gw_helpers import gateway, upstream, wait_for

from router import keys
from router.events import CHUNK, Event, Inbox
from router.queue import QueueConfig, RedisQueue
from router.sinks import Sinks

HANG_S = 30.0  # request_timeout_s of these gateways: the old reader waited this long


def _stream(url: str, body: dict) -> tuple[list[str], float]:
    """The stream's lines, and when it ended (monotonic)."""
    lines: list[str] = []
    try:
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=120) as resp:
            lines += [line for line in resp.iter_lines() if line]
    except httpx.HTTPError as exc:
        lines.append(f"transport error: {exc!r}")
    return lines, time.monotonic()


def _ended_with_an_error(lines: list[str]) -> bool:
    if not lines or lines[-1] == "data: [DONE]":
        return False
    return lines[-1].startswith("transport error") or "error" in json.loads(lines[-1][6:])


async def test_a_relayed_stream_whose_job_vanishes_ends_with_an_error(redis_server, redis_client):
    """Another dispatcher took the job, sent a chunk through Redis, then the job was deleted (RENEW
    drops the job of a front it thinks silent; a dispatcher died and its lease was reaped to
    failure) with no error written: the client is told within seconds."""
    with upstream() as up, gateway(redis_server.url, up.url, dispatch=False, request_timeout_s=HANG_S) as gw:
        task = asyncio.create_task(asyncio.to_thread(_stream, gw.url, {"prompt": "x", "stream": True}))
        q = RedisQueue(redis_client, QueueConfig(lease_s=60))
        popped = []
        while not popped:
            popped = (await q.pop(["all"], owner="elsewhere")).jobs
            await asyncio.sleep(0.02)
        chunk = {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": "t0 "}]}
        await Sinks(redis_client, "elsewhere", Inbox(), 60).for_job(popped[0]).send(
            Event(CHUNK, json.dumps(chunk).encode()))
        await asyncio.sleep(0.5)  # the front reads the chunk from the stream
        gone = time.monotonic()
        await redis_client.delete(keys.job(popped[0].id))
        lines, ended = await asyncio.wait_for(task, HANG_S + 30)
    assert '"t0 "' in lines[0]
    assert _ended_with_an_error(lines), lines
    assert ended - gone < HANG_S / 3  # a few seconds (one blocking read and a look), not the timeout


async def test_a_relayed_stream_ends_with_an_error_when_redis_freezes_or_dies(aof_redis):
    """Gateway A holds the client, gateway B dispatches; Redis is frozen (SIGSTOP) mid-stream, then
    killed. The client's stream ends with an error within 2 x lease_s (plus slack for a loaded box)."""
    lease_s = 5.0
    common = dict(lease_s=lease_s, request_timeout_s=HANG_S)
    with (
        upstream(token_delay=0.05) as up,
        gateway(aof_redis.url, up.url, dispatch=False, **common) as front,
        gateway(aof_redis.url, up.url, **common),
    ):
        task = asyncio.create_task(asyncio.to_thread(
            _stream, front.url, {"prompt": "x", "stream": True, "max_tokens": 2000}))
        await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1, 30)
        await asyncio.sleep(0.5)  # chunks flow through Redis to gateway A
        pid = aof_redis.proc.pid
        os.kill(pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            done, _ = await asyncio.wait({task}, timeout=2 * lease_s + 10)
        finally:
            os.kill(pid, signal.SIGCONT)
        if not done:  # not ended while frozen: kill it for good
            aof_redis.proc.kill()
        lines, ended = await asyncio.wait_for(task, HANG_S + 30)
    assert done, "the stream hung while Redis was frozen"
    assert any('"t0 "' in line for line in lines)
    assert _ended_with_an_error(lines), lines[-3:]
    assert ended - frozen < 2 * lease_s + 10


async def test_a_full_redis_is_a_503_and_serving_resumes_when_it_has_room(aof_redis):
    """Redis at its `maxmemory` with `noeviction` (never silently dropping jobs) refuses writes: the
    gateway answers 503 with Retry-After, not a 5xx of its own, and serves again once there is room."""
    import redis.asyncio as aredis

    r = aredis.Redis.from_url(aof_redis.url)
    body = {"prompt": "x", "max_tokens": 2}
    with upstream() as up, gateway(aof_redis.url, up.url, lease_s=5.0) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            assert (await client.post("/v1/completions", json=body)).status_code == 200
            await r.set("ballast", b"x" * (256 * 1024))
            used = int((await r.info("memory"))["used_memory"])
            await r.config_set("maxmemory-policy", "noeviction")
            await r.config_set("maxmemory", str(used - 64 * 1024))  # full: every write refused
            full = await client.post("/v1/completions", json=body)
            assert full.status_code == 503 and full.headers.get("retry-after") == "1", full.text
            assert full.json()["error"]["code"] == "queue_unavailable"
            await r.delete("ballast")
            await r.config_set("maxmemory", "0")
            assert (await client.post("/v1/completions", json=body)).status_code == 200
    await r.aclose()
