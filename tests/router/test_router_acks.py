"""One bad job never costs the others of its ack batch their acks (real Redis): a job whose record
cannot be written whole is still acked, and the rest are acked and recorded as usual."""

import asyncio
import dataclasses

from test_router_leases import job

from router import keys
from router.acker import Acker
from router.queue import QueueConfig, RedisQueue
from router.records import Outcome
from router.tenants import TenantUsage, UsageConfig
from wire.xargs import inline_key


async def test_a_bad_job_in_an_ack_batch_is_isolated(redis_client):
    q = RedisQueue(redis_client, QueueConfig(lease_s=30))
    await q.heartbeat("f1")
    for jid in ("a", "bad", "c"):
        await q.push(job(jid, 1.0))
    popped = (await q.pop(["all"], owner="d", count=3)).jobs
    assert sorted(j.id for j in popped) == ["a", "bad", "c"]
    # An inline-predicted job whose engine result in Redis is not JSON: its record cannot be built.
    popped = [dataclasses.replace(j, features={"inline": {"layer": 19}}) if j.id == "bad" else j
              for j in popped]
    await redis_client.hset(inline_key("bad"), mapping={"hidden": "{garbage", "result": "{}"})
    acker = Acker(redis_client, q, TenantUsage(redis_client, UsageConfig(cache_s=0)), clock=lambda: 1000.0)
    for j in popped:
        acker.add(j, Outcome(3, 4, "stop", 1.0, 1.5, 2.0, "http://e"))
    await acker.close(timeout_s=10)
    await asyncio.sleep(0)
    assert acker.unacked() == []
    assert await redis_client.zcard(keys.LEASES) == 0  # every lease acked, the bad job's too
    assert not any([await redis_client.exists(keys.job(j)) for j in ("a", "bad", "c")])
    # Every record too: the bad one's without the engine's feature (read, refused, gone).
    assert await redis_client.xlen(keys.RECORDS) == 3
