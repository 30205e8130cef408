"""Live knob changes: a new config applied to a running policy without losing request state."""

from __future__ import annotations

from collections.abc import Iterable

from engine.policy.base import Policy
from engine.policy.config import PolicyConfig
from engine.policy.seq import SeqState


def reconfigured(policy: Policy, new: PolicyConfig, seqs: Iterable[SeqState], now: float) -> Policy:
    """The policy to use from now on. A different policy name, or a different level ladder,
    re-enters every live request as if it had just arrived (keeping its phase and progress)."""
    from engine.policy import make_policy

    old = policy.config
    ladder = ("levels", "base_quantum", "quantum_growth", "prefill_weight")
    if new.name == old.name and all(getattr(new, k) == getattr(old, k) for k in ladder):
        policy.config = new
        return policy
    fresh = make_policy(new, policy.costs, policy.lengths)
    fresh.preemptions, fresh.promotions = policy.preemptions, policy.promotions
    for seq in seqs:
        phase, generated = seq.phase, seq.generated
        seq.generated = 0
        fresh.on_arrival(seq, now)
        if generated:
            fresh.on_tokens(seq, generated, now)
        seq.phase = phase
    return fresh
