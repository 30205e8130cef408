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


async def read_events(box: Mailbox, client: redis.Redis, job_id: str, check_s: float, stall_s: float):
    """Yield the request's events until DONE or ERROR, wherever they come from. A Redis stream
    silent for `stall_s` ends with an ERROR (its writer and every reaper are gone)."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    while True:
        if not box.remote:
            # A timer rather than asyncio.timeout: on 3.11 a timeout racing a cancel can swallow it.
            timer = loop.call_later(check_s, box.queue.put_nowait, _TICK)
            try:
                ev = await box.queue.get()
            finally:
                timer.cancel()
            if ev is _TICK:
                # A missed pub/sub note must not strand the client: look for the stream.
                if await client.exists(keys.result(job_id)):
                    box.remote = True
                continue
            if not isinstance(ev, Event):
                continue
            yield ev
            if ev.kind != CHUNK:
                return
            continue
        got = await client.xread({keys.result(job_id): box.last_id}, count=256, block=int(check_s * 1000))
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


class LocalSink:
    def __init__(self, box: Mailbox):
        self.box = box

    async def send(self, ev: Event) -> None:
        self.box.queue.put_nowait(ev)


class RemoteSink:
    """Writes events to the job's Redis stream; the first one also tells the front to read it."""

    def __init__(self, client: redis.Redis, job_id: str, front: str, ttl_s: int):
        self.r = client
        self.job_id = job_id
        self.front = front
        self.ttl_s = ttl_s
        self.sent = 0

    async def send(self, ev: Event) -> None:
        key = keys.result(self.job_id)
        fields = {b"k": ev.kind, b"d": ev.data, b"s": str(ev.status).encode()}
        if self.sent:
            await self.r.xadd(key, fields)
        else:
            async with self.r.pipeline(transaction=False) as pipe:
                pipe.xadd(key, fields)
                pipe.expire(key, self.ttl_s)
                if ev.kind == CHUNK:  # from here on, a re-run would duplicate text
                    pipe.hset(keys.job(self.job_id), b"started", b"1")
                pipe.publish(keys.moved(self.front), self.job_id)
                await pipe.execute()
        self.sent += 1
