"""The global queue in Redis: ZSET per bucket, job hashes, leases, fronts' heartbeats.

Every gateway pushes into and pops from the same ZSETs through Lua scripts, so there is one
global order however many gateways run. A popped job is leased (ZSET `leases`, expiry in Redis
time); its holder renews the lease while the job runs and acks it when done. If the holder dies,
`reap` returns the job to its queue (or, if it had begun streaming, ends it with an error event).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as redis

from router import keys
from router.job import Job
from router.queue_scripts import CANCEL, POP, PUSH, PUSH_POP, REAP, RENEW
from router.schemas import error_body

LOST_MID_STREAM = json.dumps(
    error_body(
        "the gateway that was streaming this answer stopped; retry the request",
        type_="server_error",
        code="dispatcher_lost",
    )
)


@dataclass(frozen=True)
class QueueConfig:
    buckets: tuple[str, ...] = ("all",)
    max_queue: int = 10_000
    lease_s: float = 10.0
    result_ttl_s: int = 600

    def __post_init__(self) -> None:
        if not self.buckets:
            raise ValueError("at least one queue bucket")
        if self.max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        if self.lease_s <= 0:
            raise ValueError("lease_s must be > 0")


@dataclass(frozen=True)
class Popped:
    jobs: list[Job]  # lowest score first
    dropped: int  # jobs discarded because their front was gone


class RedisQueue:
    def __init__(self, client: redis.Redis, cfg: QueueConfig):
        self.r = client
        self.cfg = cfg
        self._push = client.register_script(PUSH)
        self._push_pop = client.register_script(PUSH_POP)
        self._pop = client.register_script(POP)
        self._reap = client.register_script(REAP)
        self._cancel = client.register_script(CANCEL)
        self._renew = client.register_script(RENEW)
        self._all_queues = [keys.queue(b) for b in cfg.buckets]

    def _push_args(self, job: Job) -> list[object]:
        return [job.id, repr(job.score), self.cfg.max_queue, job.dumps(), job.bucket, job.front]

    async def push(self, job: Job, publish: bool = True) -> int:
        """Queue `job` (and wake the dispatchers); returns the new depth, or -1 when full."""
        return int(
            await self._push(
                keys=[keys.job(job.id), keys.queue(job.bucket), *self._all_queues],
                args=[*self._push_args(job), 1 if publish else 0],
            )
        )

    async def push_pop(
        self, job: Job, buckets: Sequence[str], owner: str, count: int, drop: bool = True
    ) -> tuple[int, Popped]:
        """Queue `job`, then lease up to `count` lowest jobs from `buckets`: one round trip."""
        out = await self._push_pop(
            keys=[
                keys.job(job.id),
                keys.queue(job.bucket),
                keys.LEASES,
                *self._all_queues,
                *(keys.queue(b) for b in buckets),
            ],
            args=[*self._push_args(job), len(self._all_queues), owner, self.cfg.lease_s, count, int(drop)],
        )
        return int(out[0]), self._popped(out[1:])

    async def pop(self, buckets: Sequence[str], owner: str, count: int = 1, drop: bool = True) -> Popped:
        """Lease up to `count` jobs, lowest stored score first across `buckets`; `drop`: discard
        jobs whose front stopped heartbeating (False just after a Redis outage)."""
        out = await self._pop(
            keys=[*(keys.queue(b) for b in buckets), keys.LEASES],
            args=[owner, self.cfg.lease_s, count, int(drop)],
        )
        return self._popped(out)

    @staticmethod
    def _popped(out: list) -> Popped:
        jobs = [Job.loads(out[i + 1], int(out[i + 2])) for i in range(1, len(out), 3)]
        return Popped(jobs, int(out[0]))

    async def renew(self, jobs: Sequence[Job], owner: str, check_fronts: bool = True) -> list[str]:
        """Extend `owner`'s leases of `jobs`; returns the ids to abandon (lease lost to a reaper or
        another dispatcher, cancelled, front gone)."""
        if not jobs:
            return []
        args: list[object] = [self.cfg.lease_s, owner, int(check_fronts)]
        for job in jobs:
            args += [job.id, job.front]
        return [
            j.decode() if isinstance(j, bytes) else j
            for j in await self._renew(keys=[keys.LEASES], args=args)
        ]

    async def reap(self) -> tuple[int, int, int]:
        requeued, failed, cancelled = await self._reap(
            keys=[keys.LEASES], args=[LOST_MID_STREAM, self.cfg.result_ttl_s]
        )
        return int(requeued), int(failed), int(cancelled)

    async def cancel(self, job_id: str) -> int:
        return int(await self._cancel(keys=[keys.job(job_id)], args=[job_id]))

    async def depth(self) -> int:
        async with self.r.pipeline(transaction=False) as pipe:
            for q in self._all_queues:
                pipe.zcard(q)
            return sum(await pipe.execute())

    def ack(self, pipe: redis.client.Pipeline, job_id: str) -> None:
        """Add the 'done' commands for `job_id` to `pipe` (one round trip with the record)."""
        pipe.zrem(keys.LEASES, job_id)
        pipe.delete(keys.job(job_id))

    async def heartbeat(self, front_id: str) -> None:
        await self.r.set(keys.front(front_id), b"1", px=int(self.cfg.lease_s * 1000))
