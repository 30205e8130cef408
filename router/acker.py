"""Finished jobs' Redis writes (lease ack, calibration record, tenant usage), batched.

One pipeline carries every job that finished within `delay_s` of the first (and while the previous
pipeline was in flight), so the gateway pays one round trip for many requests. Nothing waits on
these writes: the answer has already gone to the client; a lease acked `delay_s` later is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as redis

from router.job import Job
from router.queue import RedisQueue
from router.records import Outcome, add_record
from router.tenants import TenantUsage

log = logging.getLogger("skipjoin.acker")


class Acker:
    def __init__(
        self,
        client: redis.Redis,
        queue: RedisQueue,
        usage: TenantUsage,
        clock: Callable[[], float],
        delay_s: float = 0.02,
    ):
        self.r, self.queue, self.usage, self.clock, self.delay_s = client, queue, usage, clock, delay_s
        self._pending: list[tuple[Job, Outcome | None]] = []
        self._task: asyncio.Task | None = None

    def add(self, job: Job, out: Outcome | None) -> None:
        """Ack `job`; with an outcome, also record it and count its tokens for its tenant."""
        self._pending.append((job, out))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(self.delay_s)  # jobs finishing meanwhile join the batch
        while self._pending:
            batch, self._pending = self._pending, []
            for attempt in range(3):
                try:
                    await self._write(batch)
                    break
                except Exception as exc:  # noqa: BLE001 - never lose acks silently: leases would expire
                    log.warning("ack of %d jobs failed (attempt %d): %s", len(batch), attempt + 1, exc)
                    await asyncio.sleep(0.1 * (attempt + 1))

    async def _write(self, batch: list[tuple[Job, Outcome | None]]) -> None:
        now = self.clock()
        async with self.r.pipeline(transaction=False) as pipe:
            for job, out in batch:
                self.queue.ack(pipe, job.id)
                if out is not None:
                    add_record(pipe, job, out)
                    self.usage.add(pipe, job.tenant, out.prompt_tokens + out.output_tokens, now)
            await pipe.execute()

    async def close(self) -> None:
        if self._task is not None:
            await self._task
