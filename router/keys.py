"""Every Redis key and channel the gateway uses, in one place."""

from __future__ import annotations

PREFIX = "skipjoin:"
LEASES = PREFIX + "leases"  # ZSET job id -> lease expiry (Redis TIME, seconds)
RECORDS = PREFIX + "records"  # STREAM of finished-request records (records.py)
WAKE = PREFIX + "wake"  # channel: something was queued or requeued
CANCEL = PREFIX + "cancel"  # channel: job id whose client went away
QUEUE_PREFIX = PREFIX + "q:"  # ZSET per bucket: job id -> stored score (score.py)
JOB_PREFIX = PREFIX + "job:"  # HASH per job: payload, bucket, score, front, owner, started, ...
RESULT_PREFIX = PREFIX + "res:"  # STREAM per job: events for the front holding the client
FRONT_PREFIX = PREFIX + "front:"  # STRING per gateway process: heartbeat with a TTL
MOVED_PREFIX = PREFIX + "moved:"  # channel per front: "your job's events are in its stream"
USAGE_PREFIX = PREFIX + "usage:"  # counters per tenant and time bucket


def queue(bucket: str) -> str:
    return QUEUE_PREFIX + bucket


def job(job_id: str) -> str:
    return JOB_PREFIX + job_id


def result(job_id: str) -> str:
    return RESULT_PREFIX + job_id


def front(front_id: str) -> str:
    return FRONT_PREFIX + front_id


def moved(front_id: str) -> str:
    return MOVED_PREFIX + front_id
