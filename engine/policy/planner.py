"""One `Policy.plan` call: fit the batch to its caps, admit in the policy's order, make room.

The working state is the batch as it will be after this plan (`run`), the slots and KV left
(`slots`, `free`, both after the batch's next-step growth) and the decisions taken so far.
A request leaves the batch either paused (slot freed, KV kept) or evicted (KV freed); eviction
happens only where KV is short, and paused requests are evicted before running ones.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from engine.policy.plan import Capacity, Plan, kv_held, kv_need
from engine.policy.seq import Phase, SeqState

if TYPE_CHECKING:
    from engine.policy.base import Policy


class Planner:
    def __init__(self, policy: Policy, running: list[SeqState], waiting: list[SeqState],
                 cap: Capacity, now: float):
        self.p, self.cap, self.now, self.g = policy, cap, now, cap.growth_per_seq
        self.plan = Plan()
        self.run = list(running)
        self.waiting = waiting
        self.paused = policy.victim_order([s for s in waiting if s.phase is Phase.PAUSED], now)
        self.slots = policy.config.active_cap(cap.max_seqs) - len(running)
        self.free = cap.free_kv_tokens - self.g * len(running)
        self.gone: set[SeqState] = set()  # paused, evicted or admitted in this plan (identity)
        self.anchor: SeqState | None = None  # `keep_longest`: never a victim of the slot cap
        self.prefill_left = cap.prefill_tokens  # the step's prefill budget left (None: no limit)

    def build(self) -> Plan:
        if self.p.config.keep_longest and self.p.config.max_active is not None:
            self.anchor = self.p.anchor_for(self.run, self.waiting, self.cap.max_seqs)
        self.fit_running()
        if self.anchor is not None and self.anchor.phase is not Phase.RUNNING:
            self.admit_anchor()
        blocked = self.admit_in_order()
        if blocked and self.p.preemptive and self.p.config.preempt:
            self.preempt_for(blocked)
        return self.plan

    # --- the batch within its caps ------------------------------------------------------------
    def fit_running(self) -> None:
        """Over the slot cap: pause the worst (evict where the engine cannot pause). KV short for
        the next step: evict, paused requests first, each group in victim order."""
        if self.slots < 0:
            for v in self._victims()[:-self.slots]:
                self._stop(v, evict=not self.cap.can_pause)
        if self.free < 0:
            pool = self.paused + self.p.victim_order(self.run, self.now)
            for v in self.p.shortage_victims(pool, -self.free, self.g):
                self._stop(v, evict=True)
        self.p.kv_evictions += len(self.plan.evict)

    def _victims(self) -> list[SeqState]:
        return [v for v in self.p.victim_order(self.run, self.now) if v is not self.anchor]

    def admit_anchor(self) -> None:
        """The longest request waits: it takes the worst runner's slot where it fits in KV."""
        a = self.anchor
        need = kv_need(a) + self.g
        if a in self.gone or need + self.reserve() > self.free + (self.g if self.slots <= 0 else 0):
            return
        if self.slots <= 0:
            victims = self._victims()
            if not victims:
                return
            self._stop(victims[0], evict=not self.cap.can_pause)
            self.p.preemptions += 1
        if need + self.reserve() <= self.free:
            self._admit(a, need)

    def _stop(self, v: SeqState, evict: bool) -> None:
        if v.phase is Phase.RUNNING:
            self.run.remove(v)
            self.slots += 1
            self.free += self.g
            if not evict:
                self.plan.preempt.append(v)
        if evict:
            self.plan.evict.append(v)
            self.free += kv_held(v)
        self.gone.add(v)

    # --- admission ----------------------------------------------------------------------------
    def admit_in_order(self) -> list[SeqState]:
        """Admit in key order while slots and KV last. Backfill lets a later request that fits pass
        one that does not, except a promoted (aged) one: it holds the KV that frees up, else the
        small requests behind it take every freed block and the starvation bound means nothing.
        Only aged requests may then make room by preemption."""
        blocked: list[SeqState] = []
        queue = [s for s in self.waiting if s not in self.gone]
        queue.sort(key=lambda s: self.p.key(s, self.now))
        held = False
        for i, cand in enumerate(queue):
            if self.slots <= 0 or (self.prefill_left is not None and self.prefill_left <= 0):
                blocked.extend(queue[i:] if self.p.config.backfill else queue[i:i + 1])
                break
            need = kv_need(cand) + self.g
            if not held and need + self.reserve() <= self.free:
                self._admit(cand, need)
            else:
                blocked.append(cand)
                held = held or cand.aged
                if not self.p.config.backfill:
                    break
        return [s for s in blocked if s.aged] if held else blocked

    def reserve(self) -> int:
        """KV kept free at admission for the batch's growth over the next `kv_reserve_steps`
        steps: admitting to the brim makes the very next step evict someone."""
        return self.g * (len(self.run) + 1) * self.p.config.kv_reserve_steps

    def _admit(self, cand: SeqState, need: int) -> None:
        if self.prefill_left is not None and cand.phase is Phase.WAITING:
            # The last admitted may overrun the budget: the engine chunks it over the next steps.
            self.prefill_left -= kv_need(cand)  # a waiting request's KV is its unprefilled prompt
        self.plan.admit.append(cand)
        self.gone.add(cand)
        self.slots -= 1
        self.free -= need

    # --- room for a better request ------------------------------------------------------------
    def preempt_for(self, blocked: list[SeqState]) -> None:
        p, now = self.p, self.now
        pool = self._victims()
        memo: dict[SeqState, tuple] = {}

        def key(v: SeqState) -> tuple:  # victims' keys, computed only for those looked at
            k = memo.get(v)
            if k is None:
                k = memo[v] = p.key(v, now)
            return k

        limit = p.config.max_preempt_per_step
        for cand in blocked[:max(8, 2 * limit)]:  # later candidates rarely pay where earlier did not
            if cand in self.gone:  # evicted for a better candidate earlier in this loop
                continue
            taken = len(self.plan.preempt) + len(self.plan.evict)
            if taken >= limit:
                return
            ck = p.key(cand, now)
            lower = (v for v in pool if v not in self.gone and key(v) > ck)  # lazy: few are taken
            lower_paused = [v for v in self.paused if v not in self.gone and key(v) > ck]
            room = self._room_for(cand, lower, lower_paused)
            if room is None:
                continue
            if room == ():
                return  # `blocked` is in key order: no later candidate outranks anyone either
            stop, evict, slots, free = room
            if taken + len(set(stop) | set(evict)) > limit:
                continue
            # The natural wait counts the victims too: were nobody stopped, one of them may free first.
            if not p.may_preempt(cand, stop, evict, list(self.run), now):
                continue
            self._apply(cand, stop, evict, slots, free)

    def _room_for(self, cand, lower, lower_paused):
        """Victims that make room for `cand`: (stopped runners, evicted, slots, free); None where
        they cannot; () where no runner ranks below it."""
        need = kv_need(cand) + self.g
        want = need + self.reserve()
        n_stop = max(0, 1 - self.slots)
        stop = list(itertools.islice(lower, n_stop))
        if len(stop) < n_stop:
            return ()  # no runner ranks below `cand` (slots are never short by more than one here)
        slots, free = self.slots + n_stop, self.free + self.g * n_stop
        evict: list[SeqState] = []
        if not self.cap.can_pause:
            evict = list(stop)
            free += sum(kv_held(v) for v in stop)
        if want > free:  # KV too: evict, paused first, then the stopped, then further runners
            kept = [v for v in stop if v not in evict]
            for v in itertools.chain(lower_paused, kept, lower):
                if want <= free:
                    break
                evict.append(v)
                free += kv_held(v)
                if v.phase is Phase.RUNNING and v not in stop:
                    stop.append(v)
                    slots, free = slots + 1, free + self.g
        return (stop, evict, slots, free) if want <= free else None

    def _apply(self, cand, stop, evict, slots, free) -> None:
        evicted = set(evict)
        for v in stop:
            self.run.remove(v)
            if v not in evicted:
                self.plan.preempt.append(v)
            self.gone.add(v)
        for v in evict:
            self.plan.evict.append(v)
            self.gone.add(v)
        self.p.preemptions += len(stop) + sum(v.phase is Phase.PAUSED for v in evict)
        self.slots, self.free = slots, free
        self._admit(cand, kv_need(cand) + self.g)
