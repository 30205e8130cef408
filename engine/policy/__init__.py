"""Pure scheduling policy: the one place that decides order, admission and preemption. No I/O.

The protocol every driver (vLLM adapter, SGLang plugin, simulator) calls the same way:

    policy = make_policy(PolicyConfig(name="mlfq"), costs, lengths)
    policy.on_arrival(seq, now)                   # a request arrives (SeqState: plain data)
    policy.on_tokens(seq, n, now)                 # it generated n tokens
    policy.on_prediction(seq, predicted, now)     # a prediction made after arrival (inline, in the engine)
    policy.on_finish(seq, now)
    cap = Capacity(max_seqs=policy.config.active_cap(engine_slots), free_kv_tokens=free,
                   growth_per_seq=1, can_pause=True)
    plan = policy.plan(running, waiting, cap, now)  # waiting holds WAITING, PAUSED, SWAPPED requests
    # carry out, in this order: plan.evict, plan.preempt, plan.admit; report each stop:
    policy.on_preempted(seq, "paused" | "swapped" | "recomputed", now)

- `plan.preempt`: running → PAUSED (slot freed, KV kept on the device).
- `plan.evict`: running or paused → KV freed (host tier where the engine has one: "swapped";
  else "recomputed", with `cached_len` set to the prefix that survives).
- `plan.admit`: into the batch; a PAUSED request needs no new KV, only its next step's growth.
- `Capacity.max_seqs` caps the active batch (paused requests do not count); `free_kv_tokens` is
  free device KV now (paused requests' KV is not free). The plan keeps the running set within
  both: when KV is short for its next step it evicts itself (paused first, `victim_order`), so
  the engine's own victim choice is never used.
- Admission keeps KV for `kv_reserve_steps` of the batch's growth free (admitting to the brim
  makes the next step evict someone); predictions are ignored while they rank nothing (`trust.py`).
- Long queues: `candidates(waiting, slots, now)` picks what `plan` must see; `next_event_time`
  says when a waiting request's standing changes by itself (promotion); `tokens_to_next_event`
  (MLFQ) when a running one's does. Static-key policies (`static_keys`) may be kept in a heap.
"""

from engine.policy.base import Policy
from engine.policy.baselines import PriorityPolicy, SJFPolicy, SRPTPolicy
from engine.policy.config import POLICY_NAMES, PolicyConfig
from engine.policy.lengths import LengthStats
from engine.policy.mlfq import MLFQPolicy
from engine.policy.plan import Capacity, CostEstimates, Plan, kv_held, kv_need
from engine.policy.seq import PREEMPT_MODES, Phase, SeqState

_CLASSES: dict[str, type[Policy]] = {
    "fcfs": Policy, "mlfq": MLFQPolicy, "priority": PriorityPolicy, "sjf": SJFPolicy, "srpt": SRPTPolicy,
}


def make_policy(config: PolicyConfig, costs: CostEstimates | None = None,
                lengths: LengthStats | None = None) -> Policy:
    return _CLASSES[config.name](config, costs, lengths)


__all__ = [
    "POLICY_NAMES", "PREEMPT_MODES", "Capacity", "CostEstimates", "LengthStats", "MLFQPolicy", "Phase",
    "Plan", "Policy", "PolicyConfig", "PriorityPolicy", "SJFPolicy", "SRPTPolicy", "SeqState", "kv_held",
    "kv_need", "make_policy",
]
