"""What the dispatcher knows about one engine replica (mutable runtime state)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from router.http1 import Http1Pool
from router.placement import ReplicaState
from router.window import EngineLoad, WindowConfig, busy_fraction, window_size

PREFIX_MEMORY = 4096  # prompt prefixes remembered per replica for affinity


@dataclass
class Replica:
    url: str
    role: str = ""
    load: EngineLoad | None = None  # last report; None: none yet or the engine does not say
    inflight_at_report: int = 0
    healthy: bool = True
    paused: bool = False  # admin: paused, draining or removed; no new requests, running ones finish
    models: frozenset[str] | None = None  # the ids its /v1/models lists; None: not known (serves any)
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)  # job id -> running forward
    prefixes: OrderedDict[str, None] = field(default_factory=OrderedDict)
    pool: Http1Pool = field(init=False)  # keep-alive connections for forwarded requests

    def __post_init__(self) -> None:
        self.pool = Http1Pool(self.url)

    @property
    def inflight(self) -> int:
        return len(self.tasks)

    def window(self, cfg: WindowConfig) -> int:
        if self.paused:
            return 0
        if not self.healthy:
            return 1  # a down engine fails fast (503) rather than holding requests forever
        return window_size(self.load, self.inflight_at_report, cfg)

    def serves(self, model: str | None) -> bool:
        return model is None or self.models is None or model in self.models

    def state(
        self, cfg: WindowConfig, prefix_key: str, home: str = "", model: str | None = None
    ) -> ReplicaState:
        window = self.window(cfg)
        return ReplicaState(
            inflight=self.inflight,
            window=window,
            busy=busy_fraction(self.load, self.inflight, window),
            role=self.role,
            has_prefix=home == self.url or prefix_key in self.prefixes,
            healthy=self.healthy,
            serves=self.serves(model),
        )

    def remember(self, prefix_key: str) -> None:
        self.prefixes[prefix_key] = None
        self.prefixes.move_to_end(prefix_key)
        if len(self.prefixes) > PREFIX_MEMORY:
            self.prefixes.popitem(last=False)

    def report(self, load: EngineLoad | None) -> None:
        self.load, self.inflight_at_report, self.healthy = load, self.inflight, True


def assign_models(replicas: list[Replica], by_url: dict[str, frozenset[str] | None]) -> None:
    """Each replica's models as its /v1/models last listed them (router/models.py); None, so any
    model, for one that did not answer (down or starting: no reason to route around it later)."""
    for r in replicas:
        r.models = by_url.get(r.url)
