"""Pure scheduling policy: MLFQ skip-join and its comparisons. No torch, no I/O.

    policy = make_policy(PolicyConfig(name="mlfq"))
    policy.on_arrival(seq, now); plan = policy.plan(running, waiting, capacity, now)
    policy.on_tokens(seq, 1, now); policy.on_finish(seq, now)
"""

from engine.policy.base import Policy
from engine.policy.baselines import PriorityPolicy, SJFPolicy, SRPTPolicy
from engine.policy.config import POLICY_NAMES, PolicyConfig
from engine.policy.lengths import LengthStats
from engine.policy.mlfq import MLFQPolicy
from engine.policy.plan import Capacity, CostEstimates, Plan, kv_need
from engine.policy.seq import Phase, SeqState

_CLASSES: dict[str, type[Policy]] = {
    "fcfs": Policy, "mlfq": MLFQPolicy, "priority": PriorityPolicy, "sjf": SJFPolicy, "srpt": SRPTPolicy,
}


def make_policy(config: PolicyConfig, costs: CostEstimates | None = None,
                lengths: LengthStats | None = None) -> Policy:
    return _CLASSES[config.name](config, costs, lengths)


__all__ = [
    "POLICY_NAMES", "Capacity", "CostEstimates", "LengthStats", "MLFQPolicy", "Phase", "Plan", "Policy",
    "PolicyConfig", "PriorityPolicy", "SJFPolicy", "SRPTPolicy", "SeqState", "kv_need", "make_policy",
]
