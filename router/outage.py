"""Whether this process may trust Redis's lease bookkeeping right now.

A Redis outage stops every renewal and heartbeat; when Redis comes back (from its AOF) the wall
clock has moved on, so leases and fronts' heartbeats look expired although their holders live.
Reaping then would run answered jobs twice and drop queued ones. So after an outage a dispatcher
waits `settle_s` (one lease: every live holder renews within a third of it) before it reaps, drops
the jobs of silent fronts, or abandons jobs whose front looks gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RedisWatch:
    def __init__(self, settle_s: float, clock: Callable[[], float] = time.monotonic):
        if settle_s <= 0:
            raise ValueError("settle_s must be > 0")
        self.settle_s, self.clock = settle_s, clock
        self.down = False
        self._ok_since = float("-inf")  # a fresh process trusts Redis at once

    def failed(self) -> None:
        self.down = True

    def ok(self) -> None:
        if self.down:
            self.down = False
            self._ok_since = self.clock()

    @property
    def settled(self) -> bool:
        return not self.down and self.clock() - self._ok_since >= self.settle_s
