"""The dispatcher: pops the globally lowest score whenever a replica has room in its window.

Every gateway runs one (unless SKIPJOIN_DISPATCH=false); they coordinate only through the atomic
pop in Redis, so there is one global order. It is woken at once by a local push, a finished job or
a `skipjoin:wake` message, and polls every `poll_interval_s` only as a fallback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import httpx
import redis.asyncio as redis

from router.acker import Acker
from router.events import ERROR, Event, Inbox
from router.job import Job
from router.metrics import Metrics
from router.observe import request_id
from router.outage import RedisWatch
from router.placement import RequestInfo, buckets_for_role, choose_replica, has_room
from router.queue import Popped, RedisQueue
from router.records import Outcome
from router.replica import Replica
from router.schemas import error_body
from router.sinks import LeaseLost, LocalSink, RemoteSink, Sinks
from router.tasks import cancel_and_wait
from router.tenants import TenantUsage
from router.upstream import Forward, UpstreamUnavailable, fetch_load
from router.window import WindowConfig

log = logging.getLogger("skipjoin.dispatcher")


@dataclass(frozen=True)
class DispatcherConfig:
    window: WindowConfig
    role_threshold: float = 256.0
    roles_enabled: bool = False
    poll_interval_s: float = 0.05
    load_poll_s: float = 0.2
    lease_s: float = 10.0
    result_ttl_s: int = 600
    job_timeout_s: float = 600.0  # an engine that never finishes a request gets it cancelled

    def __post_init__(self) -> None:
        if self.poll_interval_s <= 0 or self.load_poll_s <= 0:
            raise ValueError("poll intervals must be > 0")
        if self.lease_s <= 0:
            raise ValueError("lease_s must be > 0")


# An engine that died or dropped the connection (no HTTP answer at all).
_ENGINE_GONE = (UpstreamUnavailable, OSError, EOFError)


def _error_event(status: int, message: str, code: str) -> Event:
    return Event(ERROR, json.dumps(error_body(message, type_="server_error", code=code)).encode(), status)


class Stop(IntEnum):
    """Why a running job's task was cancelled; when two race, the higher one wins."""

    MOVE = 1  # its engine stopped answering before the first token: re-dispatch it
    CLIENT = 2  # its client went away: ack it, answer nothing
    TIMEOUT = 3  # it ran past job_timeout_s: answer 503


@dataclass
class Running:
    """A job this dispatcher popped and holds the lease of, until its task ends (then the acker
    holds it). A cancel with no `stop` is a lost lease: the job is another dispatcher's."""

    job: Job
    replica: Replica  # where it runs now (a move changes it)
    task: asyncio.Task = field(init=False)  # set by _start right after the record is made
    sink: LocalSink | RemoteSink | None = None  # set once its task starts: what it has sent
    stop: Stop | None = None

    def stop_for(self, why: Stop) -> None:
        if self.stop is None or why > self.stop:
            self.stop = why


class Dispatcher:
    def __init__(
        self,
        cfg: DispatcherConfig,
        owner: str,
        queue: RedisQueue,
        client: redis.Redis,
        http: httpx.AsyncClient,
        replicas: list[Replica],
        inbox: Inbox,
        usage: TenantUsage,
        metrics: Metrics,
        clock: Callable[[], float],
    ):
        self.cfg, self.owner, self.queue, self.r, self.http = cfg, owner, queue, client, http
        self.replicas, self.inbox, self.usage, self.metrics, self.clock = (
            replicas,
            inbox,
            usage,
            metrics,
            clock,
        )
        self._wake = asyncio.Event()
        self.acker = Acker(client, queue, usage, clock)
        self.sinks = Sinks(client, owner, inbox, cfg.result_ttl_s)
        self.watch = RedisWatch(cfg.lease_s)
        self._jobs: dict[str, Running] = {}
        self._tasks: list[asyncio.Task] = []
        self._stoppers: set[asyncio.Task] = set()
        # Whether the queue may hold jobs: a finished job wakes the loop only then (saves a pop
        # per request when idle). The poll fallback drains regardless.
        self._backlog = True
        self._popping = 0  # jobs being popped right now (admit/_drain awaiting Redis): room they hold

    # --- lifecycle ---
    async def start(self) -> None:
        await asyncio.gather(*(self._poll_load(r) for r in self.replicas))
        self._tasks = [
            asyncio.create_task(self._loop()),
            asyncio.create_task(self._keep_leases()),
            *(asyncio.create_task(self._load_loop(r)) for r in self.replicas),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks + [t for r in self.replicas for t in r.tasks.values()])
        await self.acker.close()
        for r in self.replicas:
            r.pool.close()

    async def add_replica(self, replica: Replica) -> None:
        """Admin: start dispatching to a new replica (its load is read first)."""
        await self._poll_load(replica)
        self.replicas.append(replica)
        self._tasks.append(asyncio.create_task(self._load_loop(replica)))
        self.wake()

    async def remove_replica(self, replica: Replica) -> None:
        """Admin: forget a replica once nothing of ours runs there (callers pause it first)."""
        self.replicas = [r for r in self.replicas if r is not replica]  # its load loop ends
        replica.pool.close()

    def wake(self) -> None:
        self._backlog = True
        self._wake.set()

    def cancel(self, job_id: str, ack: bool = True) -> None:
        """Stop a job upstream (closing the connection cancels it there). `ack`: also delete it
        from Redis (its client went away); otherwise leave Redis alone (its lease was lost)."""
        run = self._jobs.get(job_id)
        if run is not None:
            if ack:
                run.stop_for(Stop.CLIENT)
            self._stoppers.add(stopper := asyncio.get_running_loop().create_task(cancel_and_wait([run.task])))
            stopper.add_done_callback(self._stoppers.discard)

    # --- the dispatch loop ---
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # A timer rather than asyncio.timeout: on 3.11 a timeout racing a cancel can swallow it.
            # Pub/sub and local events wake us at once; the poll is a fallback for missed wakes
            # and slows down tenfold while the queue is believed empty.
            interval = self.cfg.poll_interval_s * (1 if self._backlog else 10)
            timer = loop.call_later(interval, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            self._wake.clear()
            try:
                await self._drain()
            except (redis.RedisError, OSError) as exc:
                self.watch.failed()
                log.warning("dispatch: %s", exc)
                await asyncio.sleep(self.cfg.poll_interval_s)

    def _room(self) -> tuple[list[str], int]:
        """Buckets some replica with room may take, and how many jobs to pop at once (exact when
        every replica takes every bucket; one at a time with roles, so placement stays right)."""
        buckets: list[str] = []
        room = 0
        for r in self.replicas:
            s = r.state(self.cfg.window, "")
            if s.inflight < s.window:
                room += s.window - s.inflight
                buckets += [b for b in buckets_for_role(r.role, self.cfg.roles_enabled) if b not in buckets]
        room = max(0, room - self._popping)  # slots that pops still in flight will fill
        return buckets, (room if not self.cfg.roles_enabled else min(room, 1))

    async def admit(self, job: Job) -> int:
        """Queue a new job from this process's front; returns the depth, or -1 when full.
        With room here, push and pop in one round trip (the pop still takes the global lowest);
        otherwise queue it and wake every dispatcher."""
        buckets, count = self._room()
        if not count or job.bucket not in buckets:
            return await self.queue.push(job, publish=True)
        self._popping += 1
        try:
            depth, popped = await self.queue.push_pop(job, buckets, self.owner, 1, self.watch.settled)
        finally:
            self._popping -= 1
        self._started(popped)
        if depth - len(popped.jobs) - popped.dropped > 0:
            self._backlog = True
        return depth

    def _started(self, popped: Popped) -> None:
        if popped.dropped:
            self.metrics.dropped.inc(popped.dropped)
        for job in popped.jobs:
            self._start(job)

    async def _drain(self) -> None:
        while True:
            buckets, count = self._room()
            if not count:
                return
            self._popping += count
            try:
                popped = await self.queue.pop(buckets, self.owner, count, self.watch.settled)
            finally:
                self._popping -= count
            self._started(popped)
            if len(popped.jobs) < count:
                self._backlog = False  # the queue ran dry
                return

    def _start(self, job: Job) -> None:
        model = job.model
        states = [r.state(self.cfg.window, job.prefix_key, job.home, model) for r in self.replicas]
        idx = choose_replica(states, RequestInfo(job.predicted, self.cfg.role_threshold))
        if idx is None:  # only if roles changed under us: a replica of its model with room will do
            idx = next((i for i, s in enumerate(states) if s.serves and has_room(s)), None)
        if idx is None and model is not None:  # its model's replicas are full (the queue is shared
            # by all models): overcommit the least busy open one of them rather than send it elsewhere
            ours = [i for i, r in enumerate(self.replicas) if not r.paused and states[i].serves]
            if ours:
                idx = min(ours, key=lambda i: (not states[i].healthy, states[i].busy, states[i].inflight))
        if idx is None:
            idx = next((i for i, s in enumerate(states) if has_room(s)), None)
        if idx is None:  # a replica paused or its window shrank while the pop was in flight: the
            # job is leased to us already, so overcommit the least busy one that takes new requests
            open_ = [i for i, r in enumerate(self.replicas) if not r.paused] or list(range(len(states)))
            idx = min(open_, key=lambda i: (not states[i].healthy, states[i].busy, states[i].inflight))
        replica = self.replicas[idx]
        replica.remember(job.prefix_key)
        run = self._jobs[job.id] = Running(job, replica)
        task = run.task = replica.tasks[job.id] = asyncio.create_task(self._run(run))
        timer = asyncio.get_running_loop().call_later(self.cfg.job_timeout_s, self._time_out, run)
        task.add_done_callback(lambda _: timer.cancel())
        self.metrics.inflight.labels(replica.url).set(replica.inflight)
        self.metrics.dispatched(job, replica.url, max(0.0, time.time() - job.enqueued_wall))

    def _time_out(self, run: Running) -> None:
        run.stop_for(Stop.TIMEOUT)
        run.task.cancel()

    # --- one job ---
    async def _run(self, run: Running) -> None:
        job, replica = run.job, run.replica
        request_id.set(job.request_id)  # this task's log lines name the client's request
        sink = run.sink = self.sinks.for_job(job)
        tried: list[Replica] = []
        try:
            while True:
                try:
                    out = await Forward(replica.pool, replica.url, job, sink).run()
                    break
                except (*_ENGINE_GONE, asyncio.CancelledError) as exc:
                    # The engine died or hangs: before the client saw anything, try another one.
                    if isinstance(exc, asyncio.CancelledError):
                        if run.stop is not Stop.MOVE:
                            raise
                        run.stop = None
                        asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    else:
                        replica.healthy = False
                    tried.append(replica)
                    spare = None if sink.sent else self._spare(job, tried)
                    if spare is None:
                        raise
                    replica = self._move(run, spare)
            await self._finish(job, out)
        except UpstreamUnavailable as exc:
            replica.healthy = False
            await self._fail(
                job, sink, _error_event(503, f"engine unavailable: {exc}", "upstream_unavailable")
            )
        except LeaseLost:
            log.warning("job %s: lease lost; stopped (another dispatcher holds it)", job.id)
        except asyncio.CancelledError:
            if run.stop is Stop.TIMEOUT:
                await self._fail(job, sink, _error_event(503, "engine timed out", "upstream_timeout"))
            elif run.stop is Stop.CLIENT:
                self.acker.add(job, None)
            else:
                raise
        except Exception as exc:  # noqa: BLE001 - any upstream failure must reach the client
            log.warning("job %s on %s: %r", job.id, replica.url, exc)
            await self._fail(job, sink, _error_event(502, f"upstream failed: {exc!r}", "upstream_error"))
        finally:
            self._jobs.pop(job.id, None)
            replica.tasks.pop(job.id, None)
            self.metrics.inflight.labels(replica.url).set(replica.inflight)
            if self._backlog:
                self._wake.set()

    def _spare(self, job: Job, tried: list[Replica]) -> Replica | None:
        """A healthy replica this job has not tried, chosen as placement would."""
        left = [r for r in self.replicas if r.healthy and not r.paused and all(r is not t for t in tried)]
        if not left:
            return None
        states = [r.state(self.cfg.window, job.prefix_key, job.home, job.model) for r in left]
        idx = choose_replica(states, RequestInfo(job.predicted, self.cfg.role_threshold))
        return left[idx if idx is not None else 0]

    def _move(self, run: Running, new: Replica) -> Replica:
        job, old = run.job, run.replica
        log.warning("job %s: %s failed before its first token; re-dispatched to %s", job.id, old.url, new.url)
        new.tasks[job.id] = old.tasks.pop(job.id)
        run.replica = new
        self.metrics.inflight.labels(old.url).set(old.inflight)
        self.metrics.inflight.labels(new.url).set(new.inflight)
        self.metrics.redispatched.inc()
        return new

    def _evacuate(self, replica: Replica) -> None:
        """A replica stopped answering its load polls: its jobs that have sent nothing yet move to
        a healthy replica (if there is one); started ones run on, or time out with an error."""
        if not any(r.healthy and not r.paused for r in self.replicas):
            return
        for run in list(self._jobs.values()):
            if run.replica is replica and run.sink is not None and not run.sink.sent:
                run.stop_for(Stop.MOVE)
                run.task.cancel()

    async def _fail(self, job: Job, sink, ev: Event) -> None:
        try:
            await sink.send(ev)
        except LeaseLost:
            return  # the job is another dispatcher's now: its answer is theirs to give
        except (redis.RedisError, OSError) as exc:
            log.warning("job %s: error event not delivered: %s", job.id, exc)
        self.acker.add(job, None)

    async def _finish(self, job: Job, out: Outcome) -> None:
        self.acker.add(job, out)
        self.metrics.finished(job, out)

    # --- background upkeep ---
    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.lease_s / 3)
            try:
                await self._upkeep(self.watch.settled)
                self.watch.ok()
            except (redis.RedisError, OSError) as exc:
                self.watch.failed()
                log.warning("lease upkeep: %s", exc)

    async def _upkeep(self, settled: bool) -> None:
        """Renew what this dispatcher holds (running, or answered and not yet acked); reap expired
        leases only once Redis has been up for a lease (see outage.py)."""
        held = [run.job for run in self._jobs.values()] + self.acker.unacked()
        for job_id in await self.queue.renew(held, self.owner, check_fronts=settled):
            self.cancel(job_id, ack=False)
        if not settled:
            return
        requeued, failed, _ = await self.queue.reap()
        if requeued or failed:
            self.metrics.reaped.inc(requeued + failed)
            self._wake.set()

    async def _poll_load(self, replica: Replica) -> None:
        before = replica.window(self.cfg.window)
        try:
            replica.report(await fetch_load(self.http, replica.url, timeout=max(1.0, self.cfg.load_poll_s)))
        except httpx.HTTPError:
            was, replica.healthy = replica.healthy, False
            if was:
                self._evacuate(replica)
        if replica.window(self.cfg.window) > before:
            self._wake.set()

    async def _load_loop(self, replica: Replica) -> None:
        while any(r is replica for r in self.replicas):
            await asyncio.sleep(self.cfg.load_poll_s)
            await self._poll_load(replica)
