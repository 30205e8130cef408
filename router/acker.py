"""Finished jobs' Redis writes (lease ack, calibration record, tenant usage), batched.

One pipeline carries every job that finished within `delay_s` of the first (and while the previous
pipeline was in flight), so the gateway pays one round trip for many requests. Nothing waits on
these writes: the answer has already gone to the client; a lease acked `delay_s` later is harmless.
A failed write is retried until Redis takes it (backoff up to `max_backoff_s`), and the jobs stay
`unacked()` meanwhile so the dispatcher keeps renewing their leases: an answered job is never
reaped and run again because Redis blinked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as redis

from predictor.inline_predictor import take_engine_results, wants_engine_result
from router.job import FORCED, Job
from router.queue import RedisQueue
from router.records import Outcome, add_record
from router.tasks import cancel_and_wait
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
        max_backoff_s: float = 1.0,
    ):
        self.r, self.queue, self.usage, self.clock, self.delay_s = client, queue, usage, clock, delay_s
        self.max_backoff_s = max_backoff_s
        self._pending: list[tuple[Job, Outcome | None]] = []
        self._writing: list[tuple[Job, Outcome | None]] = []
        self._task: asyncio.Task | None = None

    def unacked(self) -> list[Job]:
        return [job for job, _ in self._writing + self._pending]

    def add(self, job: Job, out: Outcome | None) -> None:
        """Ack `job`; with an outcome, also record it and count its tokens for its tenant."""
        self._pending.append((job, out))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(self.delay_s)  # jobs finishing meanwhile join the batch
        while self._pending:
            self._writing, self._pending = self._pending, []
            attempt = 0
            while True:
                try:
                    await self._write(self._writing)
                    break
                except (redis.RedisError, OSError) as exc:
                    attempt += 1
                    log.warning("ack of %d jobs failed (attempt %d): %s", len(self._writing), attempt, exc)
                    await asyncio.sleep(min(self.max_backoff_s, 0.05 * 2**attempt))
                except Exception:  # noqa: BLE001 - one bad job must not cost the others their acks
                    log.exception("ack of %d jobs failed; acking them one by one", len(self._writing))
                    await self._one_by_one(self._writing)
                    break
            self._writing = []

    async def _one_by_one(self, batch: list[tuple[Job, Outcome | None]]) -> None:
        """Each job alone; one whose record cannot be written is still acked (its record lost,
        never its lease: an answered job must not be reaped and run again). Redis errors: retried."""
        for job, out in batch:
            for entry in ((job, out), (job, None)):
                try:
                    await self._write([entry])
                    break
                except (redis.RedisError, OSError):
                    self._pending.append(entry)  # Redis again: the flush loop retries it
                    break
                except Exception:  # noqa: BLE001
                    log.exception("job %s: record dropped, lease acked", job.id)

    async def _write(self, batch: list[tuple[Job, Outcome | None]]) -> None:
        # Inline-predicted jobs: the engine wrote their feature to Redis; it joins their record.
        await take_engine_results(self.r, [(job.id, job.features) for job, out in batch
                                           if out is not None and wants_engine_result(job.features)])
        now = self.clock()
        async with self.r.pipeline(transaction=False) as pipe:
            for job, out in batch:
                self.queue.ack(pipe, job.id)
                if out is not None:
                    if job.predictor != FORCED:  # a forced length teaches the predictor nothing
                        add_record(pipe, job, out)
                    self.usage.add(pipe, job.tenant, out.prompt_tokens + out.output_tokens, now)
            await pipe.execute()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait for pending acks (at most `timeout_s`: on shutdown with Redis down, their leases
        expire and the reaper fails the jobs; their answers were already delivered)."""
        if self._task is not None:
            _, pending = await asyncio.wait({self._task}, timeout=timeout_s)
            await cancel_and_wait(pending)
