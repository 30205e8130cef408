"""Prometheus metrics of one engine server, in a registry of its own (no process-wide globals).

The runner keeps cumulative counters (`stats()`) and current load (`load()`); a collector reads them
at scrape time, so nothing is counted twice. The server adds what only it sees: requests by route
and status, time to first token and end-to-end latency.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PREFIX = "skipjoin_engine"
# Runner counters exposed as Prometheus counters: stats key → (metric suffix, help).
COUNTERS = {
    "preemptions": ("preemptions", "Requests preempted by the scheduler"),
    "swap_out_bytes": ("swap_out_bytes", "KV bytes copied device → host"),
    "swap_in_bytes": ("swap_in_bytes", "KV bytes copied host → device"),
    "swap_seconds": ("swap_seconds", "Seconds spent copying KV between device and host"),
    "recomputes": ("recomputes", "Preempted requests resumed by recomputing their KV"),
    "prefix_hit_tokens": ("prefix_hit_tokens", "Prompt tokens served from the prefix cache"),
    "prompt_tokens": ("prompt_tokens", "Prompt tokens admitted"),
    "generated_tokens": ("generated_tokens", "Tokens generated"),
    "steps": ("steps", "Engine iterations"),
}
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class TokenRate:
    """Generated tokens per second over a sliding window of scrape-time samples."""

    def __init__(self, window_s: float = 30.0):
        self.window_s = window_s
        self.samples: deque[tuple[float, float]] = deque()

    def observe(self, total: float, now: float) -> float:
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        return (total - n0) / (now - t0) if now > t0 else 0.0


class RunnerCollector:
    """Reads the runner at each scrape."""

    def __init__(self, runner: Any):
        self.runner = runner
        self.rate = TokenRate()

    def describe(self) -> list:
        return []

    def collect(self):
        stats, load = self.runner.stats(), self.runner.load()
        for key, (name, help_) in COUNTERS.items():
            yield CounterMetricFamily(f"{PREFIX}_{name}", help_, value=float(stats.get(key, 0)))
        levels = CounterMetricFamily(f"{PREFIX}_requests_by_level", "Requests by MLFQ entry level",
                                     labels=["level"])
        for level, count in sorted((stats.get("requests_by_level") or {}).items()):
            levels.add_metric([str(level)], float(count))
        yield levels
        tps = self.rate.observe(float(stats.get("generated_tokens", 0)), time.monotonic())
        yield GaugeMetricFamily(f"{PREFIX}_tokens_per_second", "Generated tokens per second (30 s)",
                                value=tps)
        for key in ("running", "waiting", "swapped", "max_batch"):
            yield GaugeMetricFamily(f"{PREFIX}_{key}", f"Requests {key}" if key != "max_batch"
                                    else "Batch slots", value=float(load.get(key, 0)))


class ServerMetrics:
    def __init__(self, runner: Any):
        self.registry = CollectorRegistry()
        self.registry.register(RunnerCollector(runner))
        self.requests = Counter(f"{PREFIX}_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.ttft = Histogram(f"{PREFIX}_time_to_first_token_seconds", "Time to first token",
                              buckets=LATENCY_BUCKETS, registry=self.registry)
        self.latency = Histogram(f"{PREFIX}_request_latency_seconds", "End-to-end generation latency",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
