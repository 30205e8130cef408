"""The control plane in Redis: live knobs that gateways write and engine-side schedulers read.

A knob set is a JSON object stored with a version; readers poll the version (cheap) and reload the
object only when it moved, so a change reaches every replica within one poll interval.
"""

from __future__ import annotations

PREFIX = "skipjoin:control:"
POLICY = PREFIX + "policy"  # HASH {"version": int, "knobs": JSON of engine.policy.PolicyConfig changes}
ENGINE_STATS_PREFIX = PREFIX + "engine:"  # STRING per engine replica: JSON stats, with a TTL
POLL_S = 0.5  # how often engine-side readers look at the version


def engine_stats(replica_id: str) -> str:
    return ENGINE_STATS_PREFIX + replica_id

# --- gateway side (written by any gateway's admin API, read by every gateway) ---
GATEWAY = PREFIX + "gateway"  # HASH {"version": int, "knobs": JSON of gateway knob overrides}
REPLICAS = PREFIX + "replicas"  # HASH {"version": int, "replicas": JSON {url: {"role", "state"}}}
AUDIT = PREFIX + "audit"  # STREAM of admin changes: who, at, target, old, new, version
AUDIT_MAXLEN = 10_000
GATEWAY_STATS_PREFIX = PREFIX + "gw:"  # STRING per gateway process: JSON stats, with a TTL
STATS_TTL_S = 5  # a replica's stats vanish this long after it stops publishing


def gateway_stats(proc_id: str) -> str:
    return GATEWAY_STATS_PREFIX + proc_id
