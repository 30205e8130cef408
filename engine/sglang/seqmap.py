"""SGLang `Req` → the policy's `SeqState`: the one place that reads request fields.

The state rides on the request object itself, so it lives and dies with it (aborts included) and no
table has to be kept in step with SGLang's queues.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from engine.policy import Capacity, Phase, Policy, SeqState
from wire.xargs import PREDICTED

ATTR = "skipjoin_seq"
KEPT = "skipjoin_kept"  # KV tokens its last preemption checkpointed into the tree (0: none pending)


def seq_of(req: Any) -> SeqState | None:
    return getattr(req, ATTR, None)


def track(req: Any, policy: Policy, now: float) -> SeqState:
    """The request's state, created (and announced to the policy) the first time it is seen."""
    seq = seq_of(req)
    if seq is None:
        seq = SeqState(
            rid=str(req.rid), arrival=now, prompt_len=len(req.origin_input_ids),
            predicted_len=predicted_len(req), max_tokens=req.sampling_params.max_new_tokens,
            generated=len(req.output_ids),
        )
        policy.on_arrival(seq, now)
        setattr(req, ATTR, seq)
    return seq


def predicted_len(req: Any) -> float | None:
    """The gateway's prediction: `custom_params[skipjoin_predicted]`, else the `priority` it sent.

    Read once, before the level overwrites `req.priority`; SGLang's "no priority" is sys.maxsize.
    """
    custom = getattr(req.sampling_params, "custom_params", None)
    if isinstance(custom, dict) and custom.get(PREDICTED) is not None:
        try:
            value = float(custom[PREDICTED])
        except (TypeError, ValueError):
            value = math.nan  # a client's malformed hint: fall back to the priority
        if math.isfinite(value) and value >= 0:
            return value
    prio = req.priority
    if isinstance(prio, int) and 0 <= prio < sys.maxsize:
        return float(prio)
    return None


def mirror_level(req: Any, seq: SeqState) -> None:
    """SGLang sorts and picks decode-OOM victims by `req.priority` (low first): keep it the level."""
    req.priority = seq.level


def sync_waiting(req: Any, seq: SeqState) -> None:
    """The device prefix last matched (by `calc_priority` where the tree matches fast, by the
    driver for a preempted request): for a preempted request it covers generated tokens too, its
    checkpoint, as much of it as the tree still holds."""
    seq.cached_len = min(int(req.prefix_len or 0), seq.context_len)
    if seq.phase is Phase.RUNNING:
        seq.phase = Phase.WAITING


def capacity(policy: Policy, running: int, free_slots: int, free_kv_tokens: int) -> Capacity:
    """SGLang cannot keep the KV of a request it does not schedule resident: no pausing."""
    return Capacity(max_seqs=policy.config.active_cap(running + max(free_slots, 0)),
                    free_kv_tokens=max(free_kv_tokens, 0), growth_per_seq=1, can_pause=False)
