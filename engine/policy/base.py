"""The scheduling loop every policy shares: order the queue, fill the batch, maybe preempt.

Adapters (transformers, SGLang) and the simulator call the same four methods:
`on_arrival`, `on_tokens`, `on_finish` and `plan`.
"""

from __future__ import annotations

from engine.policy.config import PolicyConfig
from engine.policy.lengths import LengthStats
from engine.policy.plan import Capacity, CostEstimates, Plan, kv_need
from engine.policy.seq import Phase, SeqState


class SwapBudget:
    """Token bucket of swap seconds: refills at `fraction` per wall second, holds `horizon_s` worth."""

    def __init__(self, fraction: float, horizon_s: float = 10.0):
        self.fraction = fraction
        self.capacity = fraction * horizon_s
        self.level = self.capacity
        self.last = None

    def refill(self, now: float) -> None:
        if self.last is not None:
            self.level = min(self.capacity, self.level + (now - self.last) * self.fraction)
        self.last = now

    def take(self, seconds: float) -> bool:
        if seconds > self.level:
            return False
        self.level -= seconds
        return True


class Policy:
    """Base: FCFS order, no preemption for priority. Subclasses change `key` and `may_preempt`."""

    preemptive = False

    def __init__(self, config: PolicyConfig | None = None, costs: CostEstimates | None = None,
                 lengths: LengthStats | None = None):
        self.config = config or PolicyConfig(name=self.default_name())
        self.costs = costs or CostEstimates()
        self.lengths = lengths or LengthStats()
        self.budget = SwapBudget(self.config.max_swap_fraction)
        self.preemptions = 0
        self.promotions = 0

    @classmethod
    def default_name(cls) -> str:
        return "fcfs"

    # --- events -----------------------------------------------------------------------------
    def on_arrival(self, seq: SeqState, now: float) -> None:
        seq.phase = Phase.WAITING
        seq.last_run = now

    def on_tokens(self, seq: SeqState, n: int, now: float) -> None:
        seq.generated += n
        seq.last_run = now

    def on_finish(self, seq: SeqState, now: float) -> None:
        seq.phase = Phase.FINISHED
        self.lengths.observe(seq.generated)

    def on_preempted(self, seq: SeqState, swapped: bool, now: float) -> None:
        """The adapter reports each preemption it carried out (for priority or for starvation)."""
        seq.phase = Phase.SWAPPED if swapped else Phase.WAITING
        seq.preemptions += 1
        if not swapped:
            seq.cached_len = 0

    # --- ordering ---------------------------------------------------------------------------
    def key(self, seq: SeqState, now: float) -> tuple:
        return (seq.arrival, seq.rid)

    def victim_order(self, running: list[SeqState], now: float) -> list[SeqState]:
        """Worst first: the requests to give up when room is needed (also on KV starvation)."""
        return sorted(running, key=lambda s: self.key(s, now), reverse=True)

    def may_preempt(self, cand: SeqState, victims: list[SeqState], running: list[SeqState],
                    now: float) -> bool:
        return False

    def before_plan(self, waiting: list[SeqState], now: float) -> None:
        pass

    def expected_remaining(self, seq: SeqState) -> float:
        """Expected tokens still to generate: the prediction while it holds, then the learned tail."""
        if seq.predicted_len is not None and seq.generated < seq.predicted_len:
            rem = seq.predicted_len - seq.generated
        else:
            rem = self.lengths.mean_residual(seq.generated)
        if seq.max_tokens is not None:
            rem = min(rem, seq.max_tokens - seq.generated)
        return max(rem, 1.0)

    # --- the decision -----------------------------------------------------------------------
    def plan(self, running: list[SeqState], waiting: list[SeqState], cap: Capacity, now: float) -> Plan:
        self.budget.refill(now)
        self.before_plan(waiting, now)
        plan = Plan()
        slots = cap.max_seqs - len(running)
        free = cap.free_kv_tokens - cap.growth_per_seq * len(running)
        blocked: list[SeqState] = []
        for cand in sorted(waiting, key=lambda s: self.key(s, now)):
            need = kv_need(cand)
            if slots > 0 and need <= free:
                plan.admit.append(cand)
                slots, free = slots - 1, free - need
            else:
                blocked.append(cand)
                if not self.config.backfill:
                    break
        if blocked and self.preemptive and self.config.preempt:
            self._preempt_for(blocked, running, plan, slots, free, now)
        return plan

    def _preempt_for(self, blocked: list[SeqState], running: list[SeqState], plan: Plan,
                     slots: int, free: int, now: float) -> None:
        pool = self.victim_order(running, now)
        keys = [self.key(v, now) for v in pool]  # fixed within one plan: compute once
        for cand in blocked:
            if len(plan.preempt) >= self.config.max_preempt_per_step:
                return
            need = kv_need(cand)
            cand_key = self.key(cand, now)
            chosen: list[SeqState] = []
            s, f = slots, free
            for victim, vkey in zip(pool, keys, strict=True):
                if vkey <= cand_key or victim in plan.preempt:
                    continue
                chosen.append(victim)
                s, f = s + 1, f + victim.context_len + 1
                if s > 0 and need <= f:
                    break
            if not chosen:
                return  # `blocked` is in key order: no later candidate outranks any victim either
            if s <= 0 or need > f or len(plan.preempt) + len(chosen) > \
                    self.config.max_preempt_per_step:
                continue
            if not self.may_preempt(cand, chosen, [r for r in running if r not in plan.preempt], now):
                continue
            plan.preempt.extend(chosen)
            plan.admit.append(cand)
            slots, free = s - 1, f - need
            self.preemptions += len(chosen)
