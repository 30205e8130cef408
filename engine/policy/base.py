"""The scheduling loop every policy shares: order the queue, fill the batch, make room.

Every driver (the vLLM and SGLang adapters, the simulator) calls the same methods; see the
protocol in `engine/policy/__init__.py`. Subclasses change `key`, `victim_order` and `may_preempt`.
"""

from __future__ import annotations

import heapq
import itertools
import math

from engine.policy.budget import SwapBudget
from engine.policy.config import PolicyConfig
from engine.policy.lengths import LengthStats
from engine.policy.plan import Capacity, CostEstimates, Plan, kv_held
from engine.policy.planner import Planner
from engine.policy.seq import PREEMPT_MODES, Phase, SeqState
from engine.policy.trust import PredictionTrust


class Policy:
    """Base: FCFS order, no preemption for priority."""

    preemptive = False
    # Keys of waiting requests do not change while they wait: a driver may keep them in a heap
    # ordered by `key` and show `plan` only the first `window(slots)`.
    static_keys = True

    def __init__(self, config: PolicyConfig | None = None, costs: CostEstimates | None = None,
                 lengths: LengthStats | None = None):
        self.config = config or PolicyConfig(name=self.default_name())
        self.costs = costs or CostEstimates()
        self.lengths = lengths or LengthStats()
        self.budget = SwapBudget(self.config.max_swap_fraction)
        self.trust = PredictionTrust(self.config.min_prediction_rho)
        self.preemptions = 0
        self.promotions = 0
        self.kv_evictions = 0
        self._anchor: SeqState | None = None  # `keep_longest`'s last choice

    @classmethod
    def default_name(cls) -> str:
        return "fcfs"

    def set_config(self, config: PolicyConfig) -> None:
        """New knobs for the same policy and level ladder (`reconfigure.reconfigured` checks that):
        what is derived from them is rebuilt, what was learned (trust, lengths, costs) is kept."""
        self.config = config
        self.budget.retune(config.max_swap_fraction)
        self.trust.retune(config.min_prediction_rho)
        if not config.keep_longest:
            self._anchor = None

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
        if seq.predicted_len is not None:
            self.trust.observe(seq.predicted_len, seq.generated)

    def on_prediction(self, seq: SeqState, predicted: float, now: float) -> None:
        """A predicted length that arrives after `on_arrival` (the engine's own, made inline from
        the request's prefill); it replaces the gateway's. Policies that placed the request by
        its size re-place it here."""
        seq.predicted_len = max(float(predicted), 0.0)

    def prediction(self, seq: SeqState) -> float | None:
        """The request's predicted length, while predictions have been shown to rank lengths."""
        return seq.predicted_len if self.trust.trusted else None

    def on_preempted(self, seq: SeqState, mode: str, now: float) -> None:
        """Each preemption carried out: "paused" (KV kept on the device), "swapped" (KV in a host
        tier) or "recomputed" (KV freed; `cached_len` is then set to what prefix survives). The
        step reports the plan's; a driver reports only the engine's own last-resort ones."""
        if mode not in PREEMPT_MODES:
            raise ValueError(f"preemption mode must be one of {sorted(PREEMPT_MODES)}, got {mode!r}")
        seq.phase = PREEMPT_MODES[mode]
        seq.preemptions += 1
        if mode != "paused":
            seq.evicted_at = now
        if mode == "recomputed":
            seq.cached_len = 0

    # --- ordering ---------------------------------------------------------------------------
    def key(self, seq: SeqState, now: float) -> tuple:
        return (seq.arrival, seq.rid)

    def victim_order(self, seqs: list[SeqState], now: float) -> list[SeqState]:
        """Worst first: whom to pause or evict when room is needed (for priority, on the slot cap,
        on KV shortage, for migration). Every driver uses this order, never its own."""
        return sorted(seqs, key=lambda s: self.key(s, now), reverse=True)

    def victim_band(self, seq: SeqState, now: float = 0.0) -> object:
        """Victims with equal bands are equally bad; among them KV shortage takes the cheapest."""
        return self.key(seq, now)

    def shortage_victims(self, pool: list[SeqState], deficit: int, growth: int) -> list[SeqState]:
        """Evictions freeing `deficit` KV tokens from `pool` (in victim order, paused first). Within
        a band the smallest context that covers what is missing goes: the least copy or recompute."""
        def frees(v: SeqState) -> int:
            return kv_held(v) + (growth if v.phase is Phase.RUNNING else 0)

        out: list[SeqState] = []
        for _, group in itertools.groupby(pool, key=lambda s: (s.phase, self.victim_band(s))):
            members = list(group)
            while members and deficit > 0:
                covering = [v for v in members if frees(v) >= deficit]
                v = min(covering, key=frees) if covering else max(members, key=frees)
                members.remove(v)
                out.append(v)
                deficit -= frees(v)
            if deficit <= 0:
                break
        return out

    def may_preempt(self, cand: SeqState, stop: list[SeqState], evict: list[SeqState],
                    running: list[SeqState], now: float) -> bool:
        """May `cand` take the place of `stop` (runners leaving the batch) and the KV of `evict`?"""
        return False

    def expected_remaining(self, seq: SeqState) -> float:
        """Expected tokens still to generate: the prediction while it holds, then the learned tail."""
        predicted = seq.predicted_len if self.trust.trusted else None
        if predicted is not None and seq.generated < predicted:
            rem = predicted - seq.generated
        else:
            rem = self.lengths.mean_residual(seq.generated)
        if seq.max_tokens is not None:
            rem = min(rem, seq.max_tokens - seq.generated)
        return max(rem, 1.0)

    def remaining_work_s(self, seq: SeqState) -> float:
        """Engine seconds still owed: the prompt not yet prefilled at the prefill price plus the
        expected remaining output at the decode price (`prompt_aware=False`: output alone)."""
        c = self.costs
        decode = self.expected_remaining(seq) * c.decode_s_per_token
        if seq.phase is not Phase.WAITING or not self.config.prompt_aware:
            return decode
        return decode + max(seq.prompt_len + seq.generated - seq.cached_len, 0) * c.prefill_s_per_token

    def anchor_for(self, running: list[SeqState], waiting: list[SeqState],
                   engine_slots: int) -> SeqState | None:
        """`keep_longest`: the request with the most expected output left, where the slot cap
        binds (None where everyone fits). The last anchor stays while it has at least 2/3 of the
        longest's work left, so two similar requests do not take turns."""
        if len(running) + len(waiting) <= self.config.active_cap(engine_slots):
            return None
        pool = [s for s in itertools.chain(running, waiting) if s.phase is not Phase.SWAPPED]
        if not pool:
            return None
        best = max(pool, key=self.expected_remaining)
        last = self._anchor
        if last is not None and last is not best and any(s is last for s in pool) \
                and self.expected_remaining(last) >= 2 / 3 * self.expected_remaining(best):
            best = last
        self._anchor = best
        return best

    # --- waiting requests between plans ---------------------------------------------------
    def before_plan(self, waiting: list[SeqState], now: float) -> None:
        """Standing changes that happen by waiting (MLFQ promotion)."""

    def next_event_time(self, waiting: list[SeqState], now: float) -> float:
        """When a waiting request's standing next changes by itself (math.inf: never). A driver
        that skips ahead in time must plan again by then."""
        return math.inf

    def tokens_to_next_event(self, seq: SeqState) -> float:
        """Tokens a running request generates before its standing changes by itself (math.inf: never)."""
        return math.inf

    def window(self, slots: int) -> int:
        """How many waiting requests (paused ones aside) one plan needs to see."""
        return max(slots, 0) + self.config.candidate_window

    def candidates(self, waiting: list[SeqState], slots: int, now: float) -> list[SeqState]:
        """What to pass `plan` from a long queue: every paused request and the best `window(slots)`
        of the rest (`slots`: those free under the active cap). Short queues come back whole. Call
        `before_plan` first (`step` does), so promoted requests are seen at their new level."""
        n = self.window(slots)
        if len(waiting) <= n:
            return waiting
        paused = [s for s in waiting if s.phase is Phase.PAUSED]
        rest = [s for s in waiting if s.phase is not Phase.PAUSED]
        return paused + heapq.nsmallest(n, rest, key=lambda s: self.key(s, now))

    # --- the decision -----------------------------------------------------------------------
    def plan(self, running: list[SeqState], waiting: list[SeqState], cap: Capacity, now: float) -> Plan:
        """`running`: the active batch; `waiting`: waiting, paused and swapped requests. Drivers
        call `engine.policy.step.step`, which runs `before_plan` once and then `decide`."""
        self.before_plan(waiting, now)
        return self.decide(running, waiting, cap, now)

    def decide(self, running: list[SeqState], waiting: list[SeqState], cap: Capacity, now: float) -> Plan:
        """The plan, with waiting requests' standing already brought up to date (`before_plan`)."""
        self.budget.refill(now)
        return Planner(self, running, waiting, cap, now).build()
