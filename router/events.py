"""Events of one request's answer, from the dispatcher to the front that holds the client.

Same process: an in-memory mailbox. Another process: the job's Redis stream `skipjoin:res:<id>`
plus a pub/sub note on `skipjoin:moved:<front>` so the front starts reading it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import redis.asyncio as redis

from router import keys
from router.schemas import error_body

CHUNK, DONE, ERROR = b"c", b"d", b"e"
_MOVED, _TICK = object(), object()  # mailbox markers: events moved to Redis; time to look there


@dataclass(frozen=True)
class Event:
    kind: bytes  # CHUNK (one SSE data payload), DONE (non-stream: the JSON body), ERROR
    data: bytes = b""
    status: int = 200  # ERROR only


class Mailbox:
    """One request's events as seen by its front."""

    __slots__ = ("queue", "remote", "last_id")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event | object] = asyncio.Queue()
        self.remote = False  # events now come through the Redis stream
        self.last_id = b"0"


class Inbox:
    """The mailboxes of the requests whose clients this process holds."""

    def __init__(self) -> None:
        self._boxes: dict[str, Mailbox] = {}

    def open(self, job_id: str) -> Mailbox:
        box = self._boxes[job_id] = Mailbox()
        return box

    def close(self, job_id: str) -> Mailbox | None:
        return self._boxes.pop(job_id, None)

    def local(self, job_id: str) -> Mailbox | None:
        box = self._boxes.get(job_id)
        return box if box is not None and not box.remote else None

    def moved(self, job_id: str) -> None:
        box = self._boxes.get(job_id)
        if box is not None and not box.remote:
            box.remote = True
            box.queue.put_nowait(_MOVED)


STALLED = json.dumps(
    error_body("no answer from the dispatching gateway", type_="server_error", code="stalled")
)
LOST = json.dumps(
    error_body("the request was lost by the gateway; retry it", type_="server_error", code="lost")
)
UNREACHABLE = json.dumps(
    error_body("the queue became unreachable mid-answer; retry the request", type_="server_error",
               code="queue_unavailable")
)
RELAY_BLOCK_S = 2.0  # longest blocking read of a relayed stream (see the gateway's Redis socket timeout)
RERUN = json.dumps(
    error_body(
        "the dispatching gateway stopped mid-answer; retry the request",
        type_="server_error",
        code="dispatcher_lost",
    )
)


async def _look(client: redis.Redis, job_id: str) -> tuple[bool, bool]:
    """(the job's result stream exists, the job still exists); (False, True) if Redis is down."""
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.exists(keys.result(job_id))
            pipe.exists(keys.job(job_id))
            stream, job = await pipe.execute()
        return bool(stream), bool(job)
    except (redis.RedisError, OSError):
        return False, True


async def _local(box: Mailbox, client: redis.Redis, job_id: str, check_s: float):
    """Events from this process's dispatcher until they move to Redis (yields None then)."""
    loop = asyncio.get_running_loop()
    while True:
        # A timer rather than asyncio.timeout: on 3.11 a timeout racing a cancel can swallow it.
        timer = loop.call_later(check_s, box.queue.put_nowait, _TICK)
        try:
            ev = await box.queue.get()
        finally:
            timer.cancel()
        if ev is _TICK:
            # A missed pub/sub note must not strand the client: look for the stream, or the job.
            stream, alive = await _look(client, job_id)
            if stream:
                box.remote = True
            elif not alive and box.queue.empty():  # answered meanwhile: its events are queued here
                yield Event(ERROR, LOST.encode(), 503)
                return
        elif isinstance(ev, Event):
            yield ev
            if ev.kind != CHUNK:
                return
        if box.remote:
            yield None
            return


async def _remote(box: Mailbox, client: redis.Redis, job_id: str, check_s: float, stall_s: float):
    """Events from the job's Redis stream. Ends with an ERROR, never a hang, when the job is gone
    with nothing more written (its dispatcher died, or RENEW dropped it), when Redis stays
    unreachable for `check_s` (one lease), or after `stall_s` of silence."""
    loop = asyncio.get_running_loop()
    last = reached = loop.time()
    block_ms = int(min(check_s, RELAY_BLOCK_S) * 1000)  # short blocks: within the client's socket timeout
    while True:
        try:
            got = await client.xread({keys.result(job_id): box.last_id}, count=256, block=block_ms)
            reached = loop.time()
            if not got and not (await _look(client, job_id))[1]:
                # Gone; what it wrote just before going is read first, then the client is told.
                got = await client.xread({keys.result(job_id): box.last_id}, count=256)
                if not got:
                    yield Event(ERROR, LOST.encode() if box.last_id == b"0" else RERUN.encode(), 503)
                    return
        except (redis.RedisError, OSError):
            got = None
            if loop.time() - reached > check_s:
                yield Event(ERROR, UNREACHABLE.encode(), 503)
                return
            await asyncio.sleep(min(check_s, 0.5))
        if got:
            last = loop.time()
        elif loop.time() - last > stall_s:
            yield Event(ERROR, STALLED.encode(), 503)
            return
        for _, entries in got or ():
            for entry_id, fields in entries:
                box.last_id = entry_id
                ev = Event(fields[b"k"], fields.get(b"d", b""), int(fields.get(b"s", b"200")))
                yield ev
                if ev.kind != CHUNK:
                    return


async def read_events(box: Mailbox, client: redis.Redis, job_id: str, check_s: float, stall_s: float):
    """Yield the request's events until DONE or ERROR, wherever they come from. Text delivered
    from this process is never followed by a re-run's text from Redis: that ends with an ERROR."""
    delivered = 0
    if not box.remote:
        async for ev in _local(box, client, job_id, check_s):
            if ev is None:
                break
            delivered += ev.kind == CHUNK
            yield ev
            if ev.kind != CHUNK:
                return
    async for ev in _remote(box, client, job_id, check_s, stall_s):
        if delivered and ev.kind != ERROR:
            yield Event(ERROR, RERUN.encode(), 503)
            return
        yield ev
        if ev.kind != CHUNK:
            return
