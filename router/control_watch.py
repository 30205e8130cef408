"""Each gateway's reader of the control plane: swaps live knobs and replicas into running objects.

Front, dispatcher, tenant usage and queue each hold a frozen config; a change replaces that config
object whole (one attribute store on the event loop, so a request sees the old or the new config,
never half of each). What already waits is re-scored once, by the gateway that took the change
(control_rescore.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as redis

from predictor.base import Predictor
from router import control_knobs as knobs_mod
from router.control import GATEWAY, REPLICAS, ControlStore
from router.control_replicas import ReplicaSpec, check_doc, effective
from router.dispatcher import Dispatcher
from router.front import Front
from router.queue import RedisQueue
from router.replica import Replica
from router.tasks import cancel_and_wait
from router.tenants import TenantUsage
from wire import control

log = logging.getLogger("skipjoin.control")


@dataclass
class Targets:
    """The running objects a change reaches."""

    front: Front
    dispatcher: Dispatcher | None
    usage: TenantUsage
    queue: RedisQueue
    set_class_weights: Callable[[dict[str, float]], None]
    build_predictor: Callable[[str], Predictor]


class ControlWatcher:
    def __init__(self, store: ControlStore, base: dict[str, Any], configured: list[tuple[str, str]],
                 targets: Targets, proc_id: str, poll_s: float = control.POLL_S):
        self.store, self.base, self.configured, self.t = store, base, configured, targets
        self.proc_id, self.poll_s = proc_id, poll_s
        self.knobs = dict(base)  # effective gateway knobs
        self.overrides: dict[str, Any] = {}
        self.versions = {"gateway": 0, "replicas": 0}
        self.replicas: list[ReplicaSpec] = effective(configured, {})
        # The last stored document this gateway refused, per target ({"version", "error"}), until a
        # later version applies: reported on /admin/stats (the last good one stays in force).
        self.rejected: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self._poll_logged()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self._poll_logged()

    async def _poll_logged(self) -> None:
        try:
            await self.poll()
        except (redis.RedisError, OSError) as exc:
            log.warning("control plane: %s", exc)
        except Exception:  # noqa: BLE001 - a bad document must not stop the gateway
            log.exception("control plane change not applied")

    async def poll(self) -> None:
        gw, reps = await self.store.version(GATEWAY), await self.store.version(REPLICAS)
        if gw != self.versions["gateway"]:
            await self._take("gateway", gw, GATEWAY, self._apply_knobs_doc)
        if reps != self.versions["replicas"]:
            await self._take("replicas", reps, REPLICAS, self.apply_replicas)
        await self._retire()
        await self._publish()

    async def _take(self, target: str, version: int, doc, apply) -> None:
        """Apply one stored document, or refuse it whole (logged once, reported) and keep the last
        good one: a value written past the admin API must not take every gateway down. A Redis
        error leaves the version unseen: the next poll reads it again."""
        try:
            snap = await self.store.read(doc, strict=True)
            self.versions[target] = snap.version
            await apply(snap.doc)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            self.versions[target] = max(version, self.versions[target])  # not read again
            self.rejected[target] = {"version": self.versions[target], "error": str(exc)}
            log.error("control plane %s version %s refused, the last good one kept: %s", target,
                      self.versions[target], exc)
            return
        self.rejected.pop(target, None)

    async def _apply_knobs_doc(self, overrides: Any) -> None:
        self.apply_knobs(overrides)

    def apply_knobs(self, overrides: dict[str, Any]) -> None:
        knobs_mod.check_overrides(overrides)
        new = knobs_mod.overlay(self.base, overrides)
        knobs_mod.validate(new, self.t.front.cfg.default_class)
        t = self.t
        t.front.cfg = replace(t.front.cfg, score=knobs_mod.score_config(new))
        t.set_class_weights(dict(new["class_weights"]))
        t.usage.cfg = knobs_mod.usage_config(new, t.usage.cfg)
        t.queue.cfg = knobs_mod.queue_config(new, t.queue.cfg)
        if t.dispatcher is not None:
            t.dispatcher.cfg = replace(t.dispatcher.cfg, window=knobs_mod.window_config(new))
            t.dispatcher.wake()  # a wider window may have room now
        if new["predictor"] != self.knobs["predictor"]:
            t.front.predictor = t.build_predictor(new["predictor"])
        self.knobs, self.overrides = new, dict(overrides)
        log.info("gateway knobs applied: %s", json.dumps(overrides, sort_keys=True))

    async def apply_replicas(self, doc: dict[str, Any]) -> None:
        check_doc(doc)
        self.replicas = effective(self.configured, doc)
        urls = tuple(s.url for s in self.replicas if s.takes_new)
        self.t.front.cfg = replace(self.t.front.cfg, engine_urls=urls)  # probes' home replica
        d = self.t.dispatcher
        if d is None:
            return
        wanted = {s.url: s for s in self.replicas}
        for r in list(d.replicas):
            spec = wanted.pop(r.url, None)
            r.paused = spec is None or not spec.takes_new
            if spec is not None:
                r.role = spec.role
        for spec in wanted.values():
            await d.add_replica(Replica(spec.url, spec.role, paused=not spec.takes_new))
        d.wake()

    async def _retire(self) -> None:
        """Forget removed replicas once nothing of ours runs there."""
        d = self.t.dispatcher
        if d is None:
            return
        keep = {s.url for s in self.replicas}
        for r in list(d.replicas):
            if r.url not in keep and r.inflight == 0:
                await d.remove_replica(r)

    async def _publish(self) -> None:
        """This gateway's view, for any gateway's dashboard and replica listing."""
        d = self.t.dispatcher
        replicas = {} if d is None else {
            r.url: {"inflight": r.inflight, "window": r.window(d.cfg.window), "healthy": r.healthy,
                    "paused": r.paused,
                    "running": None if r.load is None else r.load.running,
                    "waiting": None if r.load is None else r.load.waiting}
            for r in d.replicas
        }
        stats = {"id": self.proc_id, "versions": self.versions, "replicas": replicas,
                 "rejected": self.rejected}
        await self.store.r.set(control.gateway_stats(self.proc_id), json.dumps(stats),
                               ex=control.STATS_TTL_S)
