"""The gateway's Prometheus metrics, on a registry of its own (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("skipjoin_queue_depth", "Requests waiting in the Redis queue", registry=r)
        self.inflight = Gauge(
            "skipjoin_inflight", "Requests in flight per replica (this dispatcher)", ["replica"], registry=r
        )
        self.queue_wait = Histogram(
            "skipjoin_queue_wait_seconds", "Enqueue to dispatch", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "skipjoin_ttft_seconds", "Enqueue to first token", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.predictor_fallbacks = Counter(
            "skipjoin_predictor_fallbacks_total",
            "Predictions that timed out or failed (heuristic used)",
            registry=r,
        )
        self.requests = Counter(
            "skipjoin_requests_total", "Requests by class and HTTP status", ["cls", "status"], registry=r
        )
        self.dropped = Counter(
            "skipjoin_dropped_total", "Queued requests dropped: their front was gone", registry=r
        )
        self.reaped = Counter("skipjoin_reaped_total", "Expired leases requeued or failed", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
