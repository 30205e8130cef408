"""Skip-join MLFQ (FastServe) with predicted lengths, guarded so it does no harm.

- Entry: the level whose token range holds the predicted output plus the prompt's prefill
  (weighted); no prediction → prefill alone decides, as in FastServe.
- Demotion: when generated tokens leave the level's range — with a prediction, only once the
  request has outrun it (demotion corrects mispredictions).
- Promotion: back to the top after waiting `promote_after_steps` engine steps (or
  `promote_after_s`) without running, plus the decode time it is expected to be spared against a
  long request (`aging_tail_quantile`): latency is wait + service, so a request expected to be
  short may wait longer before it reaches the latency tail. A promoted request that does not fit
  holds the KV that frees up (`planner.py`): backfilling past it would starve it again.
- Order within a level: promoted (aged) requests first, oldest first; then cached prefix first,
  least remaining work (unprefilled prompt + expected output, in engine seconds), arrival.
- Preemption: lowest level, most recently demoted first; only when the waiting request's expected
  saving beats what the victims lose plus the swap time — a synchronous copy stalls the whole
  batch — and within a swap-time budget.
"""

from __future__ import annotations

import math
from collections import deque

from engine.policy.base import Policy
from engine.policy.plan import kv_held
from engine.policy.seq import Phase, SeqState


class TailLength:
    """Quantiles of recently finished output lengths (None until enough have finished)."""

    def __init__(self, window: int = 512, min_count: int = 64, every: int = 32):
        self.min_count, self.every = min_count, every
        self.recent: deque[int] = deque(maxlen=window)
        self._memo: dict[float, float] = {}  # by quantile, cleared every `every` finishes
        self._since = 0

    def observe(self, length: int) -> None:
        self.recent.append(length)
        self._since += 1
        if self._since >= self.every:
            self._memo.clear()
            self._since = 0

    def quantile(self, q: float) -> float | None:
        if len(self.recent) < self.min_count:
            return None
        hit = self._memo.get(q)
        if hit is None:
            ordered = sorted(self.recent)
            hit = self._memo[q] = float(ordered[min(int(q * len(ordered)), len(ordered) - 1)])
        return hit


class MLFQPolicy(Policy):
    preemptive = True
    static_keys = False  # promotion changes a waiting request's level
    _natural: tuple[int, float] | None = None  # (runners, natural wait): memo within one plan

    @classmethod
    def default_name(cls) -> str:
        return "mlfq"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tail = TailLength()

    def size_estimate(self, seq: SeqState) -> float:
        return (self.prediction(seq) or 0.0) + seq.prompt_len * self.config.prefill_weight

    def on_arrival(self, seq: SeqState, now: float) -> None:
        super().on_arrival(seq, now)
        seq.level = seq.entry_level = self.config.entry_level(self.size_estimate(seq))
        # Tokens until the level's range is left: the whole range from the start.
        seq.quantum_left = self.config.level_upper(seq.level) - seq.prompt_len * self.config.prefill_weight
        seq.quantum_left = max(seq.quantum_left, 1.0)

    def on_prediction(self, seq: SeqState, predicted: float, now: float) -> None:
        """Re-level as if the request had entered with this prediction and then generated what it
        has; an aged request keeps its promotion (the starvation bound comes first)."""
        super().on_prediction(seq, predicted, now)
        if seq.aged:
            return
        cfg, before = self.config, seq.level
        seq.level = seq.entry_level = cfg.entry_level(self.size_estimate(seq))
        seq.quantum_left = max(cfg.level_upper(seq.level) - seq.prompt_len * cfg.prefill_weight, 1.0)
        seq.quantum_left -= seq.generated
        while seq.quantum_left <= 0 and seq.level < cfg.levels - 1:
            seq.level += 1
            seq.quantum_left += cfg.quantum(seq.level)
        if seq.level > max(before, seq.entry_level):
            seq.demoted_at = now

    def on_finish(self, seq: SeqState, now: float) -> None:
        super().on_finish(seq, now)
        self.tail.observe(seq.generated)

    def on_tokens(self, seq: SeqState, n: int, now: float) -> None:
        super().on_tokens(seq, n, now)
        seq.aged = False
        seq.quantum_left -= n
        last = self.config.levels - 1
        while seq.quantum_left <= 0 and seq.level < last:
            seq.level += 1
            seq.quantum_left += self.config.quantum(seq.level)
            seq.demoted_at = now

    def promote_after(self) -> float | None:
        """Seconds without running after which a waiting request is promoted (None: never)."""
        bounds = [self.config.promote_after_s]
        if self.config.promote_after_steps is not None:
            bounds.append(self.config.promote_after_steps * self.costs.step_s)
        bounds = [b for b in bounds if b is not None]
        return min(bounds) if bounds else None

    def promote_at(self, seq: SeqState, after: float) -> float:
        """When a waiting request is promoted: the base clock plus the decode time it is expected
        to be spared against a long request (never less than the base)."""
        q = self.config.aging_tail_quantile
        long = self.tail.quantile(q) if q is not None else None
        if long is None:
            return seq.last_run + after
        return seq.last_run + after + max(long - self.expected_remaining(seq), 0.0) * self.costs.step_s

    def decide(self, *args, **kwargs):
        self._natural = None
        return super().decide(*args, **kwargs)

    def before_plan(self, waiting: list[SeqState], now: float) -> None:
        after = self.promote_after()
        if after is None:
            return
        for seq in waiting:
            if seq.level > 0 and now > self.promote_at(seq, after):
                seq.level = 0
                seq.quantum_left = self.config.quantum(0)
                seq.aged = True
                seq.promotions += 1
                self.promotions += 1

    def next_event_time(self, waiting: list[SeqState], now: float) -> float:
        after = self.promote_after()
        if after is None:
            return math.inf
        due = [self.promote_at(s, after) for s in waiting if s.level > 0]
        return min(due) + 1e-9 if due else math.inf

    def key(self, seq: SeqState, now: float) -> tuple:
        cold = seq.cached_len == 0 and seq.phase is not Phase.SWAPPED
        if seq.aged and self.config.aged_first:  # starvation bound: aged requests first, oldest first
            return (seq.level, False, False, 0.0, seq.arrival, seq.rid)
        return (seq.level, True, cold, self.remaining_work_s(seq), seq.arrival, seq.rid)

    def victim_order(self, seqs: list[SeqState], now: float) -> list[SeqState]:
        # Ties (same level, demotion and arrival time) go by id, not by the order a driver lists them.
        return sorted(seqs, key=lambda s: (s.level, s.demoted_at, s.arrival, s.rid), reverse=True)

    def victim_band(self, seq: SeqState, now: float = 0.0) -> object:
        return seq.level

    def tokens_to_next_event(self, seq: SeqState) -> float:
        """Generated tokens until this request's level changes (lets a simulator skip ahead)."""
        return seq.quantum_left if seq.level < self.config.levels - 1 else float("inf")

    def may_preempt(self, cand, stop, evict, running, now) -> bool:
        if any(v.level < cand.level + self.config.min_level_gap for v in (*stop, *evict)):
            return False
        c = self.costs
        swap_s = sum(kv_held(v) for v in evict) * c.swap_s_per_token  # a pause copies nothing
        if self.config.cost_guard:
            natural_wait = self._natural_wait(running)
            prefill = cand.context_len - cand.cached_len if cand.phase is Phase.WAITING else 0
            cand_run = self.expected_remaining(cand) * c.step_s + max(prefill, 0) * c.prefill_s_per_token
            victims_lose = len(stop) * min(cand_run, natural_wait)
            # Unless overlapped (already netted out of swap_s_per_token), a copy stalls everyone.
            stall = swap_s * max(len(running), 1)
            if natural_wait <= victims_lose + stall + self.config.min_gain_s:
                return False
        return self.budget.take(swap_s)

    def _natural_wait(self, running: list[SeqState]) -> float:
        """Time until a slot frees by itself, were nobody preempted. Within one plan `running`
        changes only by losing this plan's victims, so its length keys the memo."""
        if self._natural is None or self._natural[0] != len(running):
            wait = min((self.expected_remaining(r) for r in running), default=0.0) * self.costs.step_s
            self._natural = (len(running), wait)
        return self._natural[1]
