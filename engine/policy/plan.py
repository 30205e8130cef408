"""What the policy is told about capacity, and what it decides."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.policy.seq import SeqState


@dataclass(frozen=True)
class Capacity:
    max_seqs: int  # batch slots
    free_kv_tokens: int  # KV token slots free on the device right now
    # KV tokens each running request needs for its next step (usually 1; 0 where a block has room).
    growth_per_seq: int = 1


@dataclass
class Plan:
    preempt: list[SeqState] = field(default_factory=list)  # running → host pool (or recompute)
    admit: list[SeqState] = field(default_factory=list)  # waiting/swapped → running, in this order


@dataclass
class CostEstimates:
    """Measured by the adapter (or given by the simulator's cost model)."""

    step_s: float = 0.05  # one decode iteration
    swap_s_per_token: float = 2e-5  # swap-out plus swap-in of one token's KV, not hidden by overlap
    prefill_s_per_token: float = 5e-4

    def observe_step(self, seconds: float, alpha: float = 0.1) -> None:
        self.step_s += alpha * (seconds - self.step_s)

    def observe_swap(self, seconds: float, tokens: int, alpha: float = 0.2) -> None:
        if tokens > 0:
            self.swap_s_per_token += alpha * (seconds / tokens - self.swap_s_per_token)


def kv_need(seq: SeqState) -> int:
    """KV token slots a request occupies once resident."""
    if seq.phase.value == "swapped":
        return seq.context_len
    return max(seq.context_len - seq.cached_len, 1)
