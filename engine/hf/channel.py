"""Hand-off of events from the generation thread to a consumer: a thread or an asyncio task."""

from __future__ import annotations

import asyncio
import threading
from collections import deque


class Channel:
    def __init__(self):
        self._events: deque = deque()
        self._cond = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def put(self, event) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()
            for loop, flag in self._waiters:
                loop.call_soon_threadsafe(flag.set)
            self._waiters.clear()

    def get(self, timeout: float | None = None):
        with self._cond:
            if not self._cond.wait_for(lambda: self._events, timeout):
                raise TimeoutError("no event")
            return self._events.popleft()

    async def aget(self):
        flag = asyncio.Event()
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._events:
                    return self._events.popleft()
                self._waiters.append((loop, flag))
            await flag.wait()
            flag.clear()
