"""The process's one pub/sub connection: wake-ups, cancels and 'moved' notes, routed to callbacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as redis

from router import keys
from router.tasks import cancel_and_wait

log = logging.getLogger("skipjoin.bus")


class Bus:
    def __init__(
        self,
        client: redis.Redis,
        front_id: str,
        on_wake: Callable[[], None],
        on_cancel: Callable[[str], None],
        on_moved: Callable[[str], None],
    ):
        self.r = client
        self.channels = {
            keys.WAKE.encode(): lambda _: on_wake(),
            keys.CANCEL.encode(): on_cancel,
            keys.moved(front_id).encode(): on_moved,
        }
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self._ready.wait()

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        while True:
            try:
                async with self.r.pubsub(ignore_subscribe_messages=True) as ps:
                    await ps.subscribe(*self.channels)
                    self._ready.set()
                    async for msg in ps.listen():
                        if msg and msg.get("type") == "message":
                            data = msg["data"]
                            self.channels[msg["channel"]](data.decode() if isinstance(data, bytes) else data)
            except (redis.RedisError, OSError) as exc:
                log.warning("pub/sub: %s; resubscribing", exc)
                self._ready.set()
                await asyncio.sleep(0.5)
