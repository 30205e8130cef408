"""Reading an engine's load: skipjoin's `/load` JSON, else vLLM/SGLang Prometheus gauges."""

from __future__ import annotations

from typing import Any

from router.window import EngineLoad

# (running gauge, waiting gauge) per engine family.
GAUGES = (
    ("vllm:num_requests_running", "vllm:num_requests_waiting"),
    ("sglang:num_running_reqs", "sglang:num_queue_reqs"),
)


def load_from_json(data: Any) -> EngineLoad | None:
    try:
        max_batch = data.get("max_batch")
        return EngineLoad(int(data["running"]), int(data["waiting"]), int(max_batch) if max_batch else None)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _gauge_sums(text: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0].strip()
        try:
            sums[name] = sums.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return sums


def load_from_metrics(text: str) -> EngineLoad | None:
    """Sum the running/waiting gauges over label sets; max_batch is unknown from metrics."""
    sums = _gauge_sums(text)
    for running, waiting in GAUGES:
        if running in sums:
            return EngineLoad(int(sums[running]), int(sums.get(waiting, 0.0)), None)
    return None
