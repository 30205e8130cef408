"""What the policy is told about capacity, and what it decides."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.policy.seq import Phase, SeqState


@dataclass(frozen=True)
class Capacity:
    max_seqs: int  # cap on the active batch; paused requests do not count
    free_kv_tokens: int  # KV token slots free on the device now (KV held by paused requests is not free)
    # KV tokens each running request needs for its next step (usually 1; 0 where a block has room).
    growth_per_seq: int = 1
    can_pause: bool = True  # False: the engine cannot keep the KV of a request it does not schedule
    # Prompt tokens the next step may prefill (chunked prefill's token budget); None: no limit.
    # Engines that enforce their own budget (vLLM, SGLang) need not pass it; the simulator does.
    prefill_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_seqs < 0 or self.growth_per_seq < 0:
            raise ValueError("max_seqs and growth_per_seq must be >= 0")


@dataclass
class Plan:
    preempt: list[SeqState] = field(default_factory=list)  # running → PAUSED: slot freed, KV kept
    evict: list[SeqState] = field(default_factory=list)  # running or paused → KV freed (host or recompute)
    admit: list[SeqState] = field(default_factory=list)  # waiting/paused/swapped → running, in this order


@dataclass
class CostEstimates:
    """Measured by the adapter (or given by the simulator's cost model)."""

    step_s: float = 0.05  # one decode iteration
    swap_s_per_token: float = 2e-5  # swap-out plus swap-in of one token's KV, not hidden by overlap
    prefill_s_per_token: float = 5e-4
    # Engine time one generated token takes in a typical batch (step time / batch): the price of
    # decode work beside `prefill_s_per_token` when remaining work is counted in seconds.
    decode_s_per_token: float = 5e-3

    def observe_step(self, seconds: float, alpha: float = 0.1, batch: int | None = None) -> None:
        self.step_s += alpha * (seconds - self.step_s)
        if batch:
            self.decode_s_per_token += alpha * (seconds / batch - self.decode_s_per_token)

    def observe_swap(self, seconds: float, tokens: int, alpha: float = 0.2) -> None:
        if tokens > 0:
            self.swap_s_per_token += alpha * (seconds / tokens - self.swap_s_per_token)


def kv_need(seq: SeqState) -> int:
    """New device KV token slots a request takes when admitted (before its next step's growth)."""
    if seq.phase is Phase.PAUSED:
        return 0
    if seq.phase is Phase.SWAPPED:
        return seq.context_len
    return max(seq.context_len - seq.cached_len, 1)


def kv_held(seq: SeqState) -> int:
    """Device KV token slots a resident (running or paused) request gives back when evicted."""
    return seq.context_len
