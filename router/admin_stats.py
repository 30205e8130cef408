"""The dashboard's JSON: queue and running requests by class and predicted length, latency by
class, every engine's running/waiting and MLFQ level occupancy, and the knobs in force.

Queue and requests come from Redis (the whole deployment); latency is this gateway's own recent
window; engines report through `wire.control.engine_stats(*)`, gateways through `gateway_stats(*)`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import redis.asyncio as redis

from router.metrics import Metrics, length_bucket
from wire import control

SAMPLE = 1000  # requests read per listing for the breakdowns (depth itself is exact)


def breakdown(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    return {
        "total": len(rows),
        "by_class": dict(sorted(Counter(r["class"] for r in rows).items())),
        "by_predicted": dict(Counter(length_bucket(r["predicted"]) for r in rows)),
    }


def _quantiles(values: Iterable[float]) -> dict[str, float | int | None]:
    xs = sorted(values)
    if not xs:
        return {"n": 0, "p50": None, "p90": None, "p99": None}
    p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))]
    p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
    return {"n": len(xs), "p50": round(statistics.median(xs), 4), "p90": round(p90, 4), "p99": round(p99, 4)}


def latency(metrics: Metrics) -> dict[str, dict[str, Any]]:
    classes = sorted(set(metrics.recent_wait) | set(metrics.recent_ttft) | set(metrics.recent_e2e))
    return {
        c: {"queue_wait": _quantiles(metrics.recent_wait.get(c, ())),
            "ttft": _quantiles(metrics.recent_ttft.get(c, ())),
            "e2e": _quantiles(metrics.recent_e2e.get(c, ()))}
        for c in classes
    }


async def _documents(r: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    names = sorted([k async for k in r.scan_iter(match=prefix + "*", count=500)])
    if not names:
        return []
    docs = []
    for name, raw in zip(names, await r.mget(names), strict=True):
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        if isinstance(doc, dict):  # anything else is not a replica's report: left out
            doc.setdefault("id", name.decode(errors="replace")[len(prefix):])
            docs.append(doc)
    return docs


async def engines(r: redis.Redis) -> list[dict[str, Any]]:
    """What each engine replica last published (running, waiting, level occupancy, ...)."""
    return await _documents(r, control.ENGINE_STATS_PREFIX)


async def gateways(r: redis.Redis) -> list[dict[str, Any]]:
    return await _documents(r, control.GATEWAY_STATS_PREFIX)


def snapshot(queued: list[dict], running: list[dict], depth: int, metrics: Metrics,
             engine_docs: list[dict], gateway_docs: list[dict], knobs: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": time.time(),
        "queue": {**breakdown(queued), "depth": depth},
        "inflight": breakdown(running),
        "latency": latency(metrics),
        "engines": engine_docs,
        "gateways": gateway_docs,
        "knobs": knobs,
    }
