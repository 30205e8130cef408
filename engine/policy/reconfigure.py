"""Live knob changes: a new config applied to a running policy without losing request state."""

from __future__ import annotations

from collections.abc import Iterable

from engine.policy.base import Policy
from engine.policy.config import PolicyConfig
from engine.policy.seq import SeqState


def reconfigured(policy: Policy, new: PolicyConfig, seqs: Iterable[SeqState], now: float) -> Policy:
    """The policy to use from now on, every knob in force at its next plan. Knobs alone change
    what is derived from them in place (`Policy.set_config`: swap budget, trust threshold); a
    different policy name, or a different level ladder, re-enters every live request as if it had
    just arrived (keeping its phase and progress) in a fresh policy that keeps what was learned."""
    from engine.policy import make_policy

    old = policy.config
    ladder = ("levels", "base_quantum", "quantum_growth", "prefill_weight")
    if new.name == old.name and all(getattr(new, k) == getattr(old, k) for k in ladder):
        policy.set_config(new)
        return policy
    fresh = make_policy(new, policy.costs, policy.lengths)
    fresh.preemptions, fresh.promotions = policy.preemptions, policy.promotions
    fresh.kv_evictions = policy.kv_evictions
    fresh.trust = policy.trust  # what the finished requests showed about the predictions stays
    fresh.trust.retune(new.min_prediction_rho)
    fresh.budget.level = min(policy.budget.level, fresh.budget.capacity)
    fresh.budget.last = policy.budget.last
    if hasattr(policy, "tail") and hasattr(fresh, "tail"):
        fresh.tail = policy.tail
    for seq in seqs:
        phase, generated = seq.phase, seq.generated
        seq.generated = 0
        fresh.on_arrival(seq, now)
        if generated:
            fresh.on_tokens(seq, generated, now)
        seq.phase = phase
    return fresh
