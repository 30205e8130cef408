"""Pure scheduling policy: the one place that decides order, admission and preemption. No I/O.

Every driver (vLLM adapter, SGLang plugin, simulator) calls the same way:

    policy = make_policy(PolicyConfig(name="mlfq"), costs, lengths)
    policy.on_arrival(seq, now)                   # a request arrives (SeqState: plain data)
    policy.on_tokens(seq, n, now)                 # it generated n tokens
    policy.on_prediction(seq, predicted, now)     # a prediction made after arrival (inline, in the engine)
    policy.on_finish(seq, now)
    policy = pending.apply(policy, live_seqs, now)  # knobs from the control plane (`live.py`)
    step(policy, View(running, waiting, engine_slots, free_kv_tokens, now), driver)  # `step.py`

`step` plans once and hands the plan back through the driver's four methods (the `step.Driver`
protocol): `evict(seq) -> (mode, cached)`, `pause(seq)`, `admit(seq)`, `order_running(best_first)`.
A driver implements those and nothing else that decides; it reports only what the engine did by
itself (`on_preempted(seq, "recomputed", now)` for its own last-resort stop). `Policy.plan` is the
same decision without a driver (tests, benchmarks of the planner). A new driver: build the `View`
from the engine's queues once per pass, carry out each method with the engine's mechanics, and
run `tests/contract` (the same scenario, the same decisions, step by step) against it.

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
- Long queues: `candidates(waiting, free slots, now)` picks what `plan` must see; `next_event_time`
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
