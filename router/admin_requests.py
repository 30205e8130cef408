"""Admin view of requests: what waits in the global queue, what runs, and cancelling one.

Read straight from Redis, so every gateway lists every gateway's requests. A cancelled request's
client gets an OpenAI error through the request's result stream (the same path a remote
dispatcher's answer takes), so nothing accepted goes unanswered.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as redis

from router import keys
from router.events import ERROR
from router.job import Job
from router.queue import RedisQueue
from router.score import ScoreConfig, live_from_stored
from wire.errors import error_body

CANCELLED = json.dumps(
    error_body("cancelled by an operator", type_="server_error", code="cancelled_by_operator")
).encode()
CANCEL_STATUS = 503


def _row(job: Job, now_wall: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": job.id,
        "class": job.cls,
        "tenant": job.tenant,
        "predicted": job.predicted,
        "predictor": job.predictor,
        "age_s": round(max(0.0, now_wall - job.enqueued_wall), 3),
        "request_id": job.request_id,  # the client's X-Request-Id (or the gateway's)
        **extra,
    }


async def _jobs(r: redis.Redis, ids: list[bytes]) -> list[tuple[Job, dict[bytes, bytes]] | None]:
    async with r.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(keys.job(job_id.decode()))
        hashes = await pipe.execute()
    return [(Job.loads(h[b"payload"]), h) if h.get(b"payload") else None for h in hashes]


async def queued(queue: RedisQueue, score: ScoreConfig, clock_now: float, limit: int) -> list[dict]:
    """Queued requests, lowest score (next to run) first."""
    entries: list[tuple[bytes, float]] = []
    for q in (keys.queue(b) for b in queue.cfg.buckets):
        entries += await queue.r.zrange(q, 0, limit - 1, withscores=True)
    entries = sorted(entries, key=lambda e: e[1])[:limit]
    now = time.time()
    rows = []
    for (_, stored), found in zip(entries, await _jobs(queue.r, [e[0] for e in entries]), strict=True):
        if found is not None:
            rows.append(_row(found[0], now, score=round(live_from_stored(stored, clock_now, score), 3)))
    return rows


async def inflight(r: redis.Redis, local_replicas: dict[str, str], limit: int) -> list[dict]:
    """Leased (running) requests; `replica` is known for those this gateway dispatched."""
    ids = await r.zrange(keys.LEASES, 0, limit - 1)
    now = time.time()
    rows = []
    for found in await _jobs(r, ids):
        if found is not None:
            job, h = found
            rows.append(_row(job, now, owner=h.get(b"owner", b"").decode(),
                             replica=local_replicas.get(job.id), started=h.get(b"started") == b"1"))
    return rows


async def cancel(queue: RedisQueue, job_id: str, result_ttl_s: int) -> bool:
    """Cancel a queued or running request; False when there is no such request."""
    front = await queue.r.hget(keys.job(job_id), "front")
    if front is None or not await queue.cancel(job_id):
        return False
    async with queue.r.pipeline(transaction=False) as pipe:  # the path a remote answer takes
        pipe.xadd(keys.result(job_id), {b"k": ERROR, b"d": CANCELLED, b"s": str(CANCEL_STATUS).encode()})
        pipe.expire(keys.result(job_id), result_ttl_s)
        pipe.publish(keys.moved(front.decode()), job_id)
        await pipe.execute()
    return True
