"""Calibration records: one XADD per finished request to `skipjoin:records` (the predictor reads it)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from router import keys
from router.job import Job

RECORDS_MAXLEN = 100_000
# The record's field names, in order: the contract with predictor/calibration.
RECORD_FIELDS = (
    "id",
    "model",
    "prompt_tokens",
    "output_tokens",
    "max_tokens",
    "finish_reason",
    "queue_wait_s",
    "ttft_s",
    "total_s",
    "predicted",
    "p90",
    "predictor",
    "class",
    "tenant",
    "replica",
    "prompt_hash",
    "features",
    "temperature",  # as asked ("": the engine's default); the served length depends on it
)


@dataclass(frozen=True)
class Outcome:
    """What the dispatcher measured while a job ran (wall-clock seconds since epoch)."""

    prompt_tokens: int
    output_tokens: int
    finish_reason: str
    dispatched_at: float
    first_token_at: float | None
    finished_at: float
    replica: str


def record_fields(job: Job, out: Outcome) -> dict[str, str]:
    start = job.enqueued_wall
    ttft = "" if out.first_token_at is None else f"{out.first_token_at - start:.6f}"
    values = (
        job.id,
        str(job.body.get("model") or ""),
        str(out.prompt_tokens),
        str(out.output_tokens),
        "" if job.max_tokens is None else str(job.max_tokens),
        out.finish_reason,
        f"{out.dispatched_at - start:.6f}",
        ttft,
        f"{out.finished_at - start:.6f}",
        f"{job.predicted:g}",
        f"{job.p90:g}",
        job.predictor,
        job.cls,
        job.tenant,
        out.replica,
        job.prompt_hash,
        json.dumps(job.features, separators=(",", ":")),
        str(job.body.get("temperature", "")),
    )
    return dict(zip(RECORD_FIELDS, values, strict=True))


def add_record(pipe, job: Job, out: Outcome) -> None:
    pipe.xadd(keys.RECORDS, record_fields(job, out), maxlen=RECORDS_MAXLEN, approximate=True)
