"""Remote sinks (real Redis): a result stream never loses its TTL, and an event whose write was
cancelled midway counts as sent (the job is then never re-run elsewhere from its first chunk)."""

import asyncio

import pytest
from test_router_leases import job

from router import keys
from router.events import CHUNK, DONE, Event, Inbox
from router.queue import QueueConfig, RedisQueue
from router.sinks import RemoteSink, Sinks


async def _popped(redis_client, jid: str):
    q = RedisQueue(redis_client, QueueConfig(lease_s=60))
    await q.heartbeat("f1")
    await q.push(job(jid, 1.0))
    return (await q.pop(["all"], owner="d1")).jobs[0]


async def test_a_late_event_after_the_front_dropped_the_stream_still_expires(redis_client):
    sink = Sinks(redis_client, "d1", Inbox(), 60).for_job(await _popped(redis_client, "a"))
    await sink.send(Event(CHUNK, b"{}"))
    assert 0 < await redis_client.ttl(keys.result("a")) <= 60
    await redis_client.delete(keys.result("a"))  # the front finished with it (client gone)
    await sink.send(Event(DONE))  # the dispatcher's last word arrives after
    assert 0 < await redis_client.ttl(keys.result("a")) <= 60  # not a stream that lives forever


async def test_an_event_cancelled_mid_write_counts_as_sent(redis_client):
    popped = await _popped(redis_client, "b")
    script = Sinks(redis_client, "d1", Inbox(), 60).send

    async def written_then_cancelled(**kw):
        await script(**kw)  # Redis ran it...
        raise asyncio.CancelledError  # ...and the dispatcher was cancelled before hearing back

    sink = RemoteSink(written_then_cancelled, "b", "d1", popped.front, 60)
    with pytest.raises(asyncio.CancelledError):
        await sink.send(Event(CHUNK, b'{"first": 1}'))
    assert await redis_client.xlen(keys.result("b")) == 1
    assert sink.sent == 1  # so the dispatcher does not re-run it elsewhere from the start
