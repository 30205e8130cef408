"""Live knobs in and stats out for the plugin, through the Redis control plane (`wire.control`).

The same parts as the vLLM backend (`engine.control`), the same environment variables. SGLang runs
the plugin in each of its processes; only the scheduler plans, so the threads start on its first
pass. A knob change goes out with the next request broadcast of the rank that reads the requests
and is applied by every rank's scheduler thread at the start of the same pass.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from engine.policy import PolicyConfig
from engine.sglang.driver import Driver

log = logging.getLogger("skipjoin.engine.control")
REDIS_ENV = "SKIPJOIN_ENGINE_REDIS_URL"
REPLICA_ENV = "SKIPJOIN_ENGINE_REPLICA_ID"


class Control:
    def __init__(self, driver: Driver, base: PolicyConfig, redis_url: str, replica_id: str):
        if not redis_url:
            raise ValueError("redis_url must be non-empty")
        self.driver, self.base, self.redis_url, self.replica_id = driver, base, redis_url, replica_id
        self.watcher = None
        self.publisher = None
        self._stop = threading.Event()

    @classmethod
    def from_env(cls, driver: Driver, environ: dict[str, str]) -> Control | None:
        url = environ.get(REDIS_ENV, "")
        replica = environ.get(REPLICA_ENV) or f"{socket.gethostname()}:{os.getpid()}"
        return cls(driver, driver.policy.config, url, replica) if url else None

    def start(self) -> None:
        """Every rank watches the knobs, but only a rank that reads the requests sends its
        proposal (SGLang broadcasts it to the others); rank 0 alone publishes the stats."""
        from engine.control import KnobWatcher, StatsPublisher

        self.watcher = KnobWatcher(self.redis_url, self.on_knobs).start()
        if self.driver.rank != 0:
            return
        self.publisher = StatsPublisher(self.redis_url, self.replica_id)
        threading.Thread(target=self._publish_loop, name="skipjoin-stats", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()

    def on_knobs(self, knobs: dict, version: int) -> None:
        """Knobs are changes to the launch config; a bad set raises (the watcher logs it)."""
        self.driver.request_config(self.base.updated(knobs))
        log.info("policy knobs version %s queued for every rank's next pass", version)

    def snapshot(self) -> dict:
        p = self.driver.policy
        return {**self.driver.stats, "policy": p.config.to_dict(), "preemptions": p.preemptions,
                "promotions": p.promotions, "kv_evictions": p.kv_evictions, "replica_id": self.replica_id,
                "backend": "sglang"}

    def _publish_loop(self) -> None:
        while not self._stop.wait(1.0):
            self.publisher.publish(self.snapshot())
