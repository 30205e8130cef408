"""The engine side of the control plane: live MLFQ knobs in, scheduler stats out, through Redis.

The scheduler runs in the engine's own thread and must never block on or fail because of Redis:
`KnobWatcher` polls in a daemon thread and hands changes over by callback; `StatsPublisher`
rate-limits its writes and swallows every Redis error (the dashboard may miss a second of stats;
a request must not).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from wire import control

log = logging.getLogger("skipjoin.engine.control")


class KnobWatcher:
    """Calls `on_change(knobs, version)` whenever `wire.control.POLICY`'s version moves, and once
    at start when knobs are already set. Survives Redis outages: logs once, keeps polling. A
    callback that raises is logged and that version is not offered again."""

    def __init__(self, redis_url: str, on_change: Callable[[dict[str, Any], int], None],
                 poll_s: float = control.POLL_S):
        if poll_s <= 0:
            raise ValueError("poll_s must be > 0")
        self.r = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.on_change, self.poll_s = on_change, poll_s
        self.version = 0  # last version handed to on_change
        self.rejected: dict[str, Any] | None = None  # the last version not applied, and why
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skipjoin-knobs", daemon=True)
        self._down = False

    def start(self) -> KnobWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.r.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.poll_s)

    def poll(self) -> bool:
        """One look at the version; True when `on_change` was called."""
        try:
            version = int(self.r.hget(control.POLICY, "version") or 0)
            if version == self.version:
                return False
            if version == 0:  # nothing set (or Redis lost its data): keep the knobs that run
                self.version = 0
                return False
            raw = self.r.hget(control.POLICY, "knobs")
        except (redis.RedisError, OSError, ValueError) as exc:
            if not self._down:
                log.warning("control plane unreachable, retrying: %s", exc)
            self._down = True
            return False
        self._down = False
        try:
            knobs = json.loads(raw or b"{}")
            self.on_change(knobs, version)
        except Exception as exc:  # noqa: BLE001 - a bad knob set must not kill the watcher
            self.rejected = {"version": version, "error": repr(exc)}
            log.exception("knobs version %d not applied", version)
        self.version = version
        return True


class StatsPublisher:
    """`publish(stats)` writes JSON to `wire.control.engine_stats(replica_id)` with a TTL, at most
    once per `every_s`; never raises into the caller."""

    def __init__(self, redis_url: str, replica_id: str, every_s: float = 1.0,
                 ttl_s: int = control.STATS_TTL_S):
        if every_s < 0 or ttl_s < 1:
            raise ValueError("every_s must be >= 0 and ttl_s >= 1")
        if not replica_id:
            raise ValueError("replica_id must be non-empty")
        self.r = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.key, self.every_s, self.ttl_s = control.engine_stats(replica_id), every_s, ttl_s
        self._last = float("-inf")
        self._lock = threading.Lock()

    def publish(self, stats: dict[str, Any]) -> bool:
        """True when written now; False when rate-limited or Redis failed."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.every_s:
                return False
            self._last = now
        try:
            self.r.set(self.key, json.dumps({**stats, "at": time.time()}), ex=self.ttl_s)
        except Exception as exc:  # noqa: BLE001 - stats are best-effort; the engine goes on
            log.debug("stats not published: %s", exc)
            return False
        return True

    def close(self) -> None:
        self.r.close()
