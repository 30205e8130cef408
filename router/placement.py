"""Replica choice: a pure function over plain data.

Rules, in order: a replica must serve the model asked for (when its model list is known), have room
in its window and accept the request's role (a "short"
replica takes requests predicted below the threshold, a "long" one the rest, an untagged one
anything); among those, prefer one that recently served the same prompt prefix (its prefix cache
holds the KV) unless it is clearly busier than the least loaded; otherwise the least loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

SHORT, LONG = "short", "long"
ROLES = ("", SHORT, LONG)


@dataclass(frozen=True)
class ReplicaState:
    inflight: int  # our requests on this replica now
    window: int  # how many we may hold in flight there (see window.py)
    busy: float  # load fraction: (running + waiting) / max_batch, or inflight / window
    role: str = ""  # "", "short" or "long"
    has_prefix: bool = False  # served this request's prompt prefix recently
    healthy: bool = True
    serves: bool = True  # lists the request's model (or its list is not known yet)


@dataclass(frozen=True)
class RequestInfo:
    predicted_len: float
    role_threshold: float
    affinity_slack: float = 0.25  # how much busier an affine replica may be than the least loaded


def role_of(predicted_len: float, threshold: float) -> str:
    return SHORT if predicted_len < threshold else LONG


def accepts(replica_role: str, predicted_len: float, threshold: float) -> bool:
    return not replica_role or replica_role == role_of(predicted_len, threshold)


def has_room(r: ReplicaState) -> bool:
    return r.inflight < r.window


def candidates(replicas: list[ReplicaState], request: RequestInfo) -> list[int]:
    ok = [
        i
        for i, r in enumerate(replicas)
        if r.serves and has_room(r) and accepts(r.role, request.predicted_len, request.role_threshold)
    ]
    healthy = [i for i in ok if replicas[i].healthy]
    return healthy or ok


def choose_replica(replicas: list[ReplicaState], request: RequestInfo) -> int | None:
    """Index of the replica to send `request` to, or None when none may take it now."""
    ok = candidates(replicas, request)
    if not ok:
        return None
    least = min(ok, key=lambda i: (replicas[i].busy, replicas[i].inflight, i))
    affine = [
        i
        for i in ok
        if replicas[i].has_prefix and replicas[i].busy <= replicas[least].busy + request.affinity_slack
    ]
    if affine:
        return min(affine, key=lambda i: (replicas[i].busy, i))
    return least


def buckets_for_role(role: str, roles_enabled: bool) -> tuple[str, ...]:
    """Queue buckets a replica with this role may pop from (one bucket when roles are off)."""
    if not roles_enabled:
        return ("all",)
    return (role,) if role else (SHORT, LONG)


def bucket_of(predicted_len: float, threshold: float, roles_enabled: bool) -> str:
    return role_of(predicted_len, threshold) if roles_enabled else "all"
