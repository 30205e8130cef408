"""Adaptive in-flight window per replica: a pure function over plain data.

A continuous-batching engine serves everyone it holds at once, so holding requests back in the
gateway only pays once the engine is saturated. The window lets our in-flight count grow to the
engine's free batch capacity (max_batch minus what others put there) plus a small headroom that
keeps the engine's own queue primed; past that, requests wait in Redis where the global order is
decided. Without load reports, the configured ceiling alone bounds our in-flight count.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowConfig:
    window_min: int = 1
    window_max: int = 64
    headroom: int = 1  # requests allowed to wait inside the engine beyond its batch

    def __post_init__(self) -> None:
        if self.window_min < 1:
            raise ValueError("window_min must be >= 1")
        if self.window_max < self.window_min:
            raise ValueError("window_max must be >= window_min")
        if self.headroom < 0:
            raise ValueError("window headroom must be >= 0")


@dataclass(frozen=True)
class EngineLoad:
    running: int
    waiting: int
    max_batch: int | None  # None: the engine does not say (vLLM/SGLang /metrics)


def window_size(load: EngineLoad | None, inflight_at_report: int, cfg: WindowConfig) -> int:
    """How many requests we may keep in flight on a replica, given its last load report."""
    if load is None:
        return cfg.window_max
    if not load.max_batch:
        # Batch size unknown (vLLM/SGLang gauges): a non-empty engine queue means saturation, so
        # shrink until at most `headroom` of ours wait there; an empty queue means room.
        if load.waiting <= 0:
            return cfg.window_max
        size = inflight_at_report - load.waiting + cfg.headroom
        return max(cfg.window_min, min(cfg.window_max, size))
    foreign = max(0, load.running + load.waiting - inflight_at_report)
    size = load.max_batch - foreign + cfg.headroom
    return max(cfg.window_min, min(cfg.window_max, size))


def busy_fraction(load: EngineLoad | None, inflight: int, window: int) -> float:
    """Load fraction used to rank replicas (least loaded first)."""
    if load is None or not load.max_batch:
        return inflight / max(1, window)
    return (load.running + load.waiting) / load.max_batch
