"""The gateway's Prometheus metrics, on a registry of its own (no process-global state)."""

from __future__ import annotations

import math
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from router.job import Job
from router.records import Outcome

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# log(predicted / served): 0 is exact; ±0.69 is off by 2x, ±2.3 by 10x.
# Seconds per output token after the first (decode pace).
_TPOT_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
_LOG_RATIO_BUCKETS = (-3.0, -2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 3.0)
LENGTH_BUCKETS = (64, 256, 1024)  # predicted-length label edges (tokens)
RECENT = 256  # latencies kept per class for the dashboard


def length_bucket(predicted: float) -> str:
    """Label for a predicted length: '<64', '64-256', '256-1024', '>=1024'."""
    edges = LENGTH_BUCKETS
    if predicted < edges[0]:
        return f"<{edges[0]}"
    for lo, hi in zip(edges, edges[1:], strict=False):
        if predicted < hi:
            return f"{lo}-{hi}"
    return f">={edges[-1]}"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge("skipjoin_queue_depth", "Requests waiting in the Redis queue", registry=r)
        self.inflight = Gauge(
            "skipjoin_inflight", "Requests in flight per replica (this dispatcher)", ["replica"], registry=r
        )
        by = ["cls", "predicted"]  # class and predicted-length bucket (length_bucket)
        self.queue_wait = Histogram(
            "skipjoin_queue_wait_seconds", "Enqueue to dispatch", by, buckets=_LATENCY_BUCKETS, registry=r
        )
        self.ttft = Histogram(
            "skipjoin_ttft_seconds", "Enqueue to first token", by, buckets=_LATENCY_BUCKETS, registry=r
        )
        self.e2e = Histogram(
            "skipjoin_e2e_seconds", "Enqueue to last token (as the engine answered)", by,
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tpot = Histogram(
            "skipjoin_tpot_seconds", "Time per output token after the first", ["cls"],
            buckets=_TPOT_BUCKETS, registry=r,
        )
        # Tokens by tenant too: counters only (a histogram per tenant would multiply the series).
        self.prompt_tokens = Counter(
            "skipjoin_prompt_tokens_total", "Prompt tokens served", ["cls", "tenant"], registry=r
        )
        self.output_tokens = Counter(
            "skipjoin_output_tokens_total", "Output tokens served", ["cls", "tenant"], registry=r
        )
        self.predicted_tokens = Counter(
            "skipjoin_predicted_tokens_total", "Output tokens predicted for the requests served",
            ["cls"], registry=r,
        )
        self.predictor_error = Histogram(
            "skipjoin_predictor_log_ratio",
            "log(predicted / served tokens) per finished request; censored: cut at max_tokens",
            ["censored"],
            buckets=_LOG_RATIO_BUCKETS,
            registry=r,
        )
        self.dispatches = Counter(
            "skipjoin_dispatches_total", "Requests dispatched per replica (this gateway)", ["replica"],
            registry=r,
        )
        self.admin_changes = Counter(
            "skipjoin_admin_changes_total", "Control-plane changes made through this gateway", ["target"],
            registry=r,
        )
        # Recent latencies per class (seconds), for the dashboard's "latency by class".
        self.recent_wait: dict[str, deque[float]] = {}
        self.recent_ttft: dict[str, deque[float]] = {}
        self.recent_e2e: dict[str, deque[float]] = {}
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
        self.redispatched = Counter(
            "skipjoin_redispatched_total", "Moved to another replica before the first token", registry=r
        )

    def dispatched(self, job: Job, replica: str, wait_s: float) -> None:
        self.queue_wait.labels(job.cls, length_bucket(job.predicted)).observe(wait_s)
        self.dispatches.labels(replica).inc()
        self.recent_wait.setdefault(job.cls, deque(maxlen=RECENT)).append(wait_s)

    def finished(self, job: Job, out: Outcome) -> None:
        if out.first_token_at is not None:
            ttft = max(0.0, out.first_token_at - job.enqueued_wall)
            self.ttft.labels(job.cls, length_bucket(job.predicted)).observe(ttft)
            self.recent_ttft.setdefault(job.cls, deque(maxlen=RECENT)).append(ttft)
        bucket = length_bucket(job.predicted)
        e2e = max(0.0, out.finished_at - job.enqueued_wall)
        self.e2e.labels(job.cls, bucket).observe(e2e)
        self.recent_e2e.setdefault(job.cls, deque(maxlen=RECENT)).append(e2e)
        if out.first_token_at is not None and out.output_tokens > 1:
            pace = (out.finished_at - out.first_token_at) / (out.output_tokens - 1)
            self.tpot.labels(job.cls).observe(max(0.0, pace))
        self.prompt_tokens.labels(job.cls, job.tenant).inc(out.prompt_tokens)
        self.output_tokens.labels(job.cls, job.tenant).inc(out.output_tokens)
        self.predicted_tokens.labels(job.cls).inc(max(0.0, job.predicted))
        served = max(1, out.output_tokens)
        censored = out.finish_reason == "length"
        ratio = math.log(max(1.0, job.predicted) / served)
        self.predictor_error.labels("true" if censored else "false").observe(ratio)

    def render(self) -> bytes:
        return generate_latest(self.registry)
