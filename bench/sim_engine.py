"""One simulated engine replica: continuous batching driven by an `engine.policy` Policy.

Every decision (admission order, pauses, evictions on KV shortage, the candidates a plan sees,
when to plan again) is the policy's: `EngineSim` is a driver of `engine.policy.step` (it implements
its `Driver` protocol and nothing else decides); this file only keeps time and KV books. Paused
requests keep their KV on the device; evicted ones go to the host tier (swap copies charged).

Event skipping: between events the batch runs `k` identical decode iterations in one go, and a
request's token count is brought up to date (`Policy.on_tokens(seq, n, now)`) only when someone
looks at it: at its completion, its MLFQ level change (`tokens_to_next_event`), a preemption, or a
`plan` that may preempt. `plan` runs only at events (arrival, completion, level change, promotion
deadline, KV exhaustion). Iteration i of a block takes

    max(step_min, step_base + step_per_seq * b + step_per_ctx * ctx0) + step_per_ctx * i * b
                                       (+ admissions' prefill and unhidden copies in iteration 0)
so a block of k iterations has a closed-form duration.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from bench.costmodel import CostModel
from engine.policy import Phase, Policy, SeqState, kv_need
from engine.policy.step import View, may_stop_runners, should_plan, step


class Job:
    __slots__ = ("seq", "idx", "out_len", "gen_iter", "kv0", "iter0", "version", "first", "done",
                 "prefix_id", "prefix_len", "replica", "held")

    def __init__(self, seq: SeqState, idx: int, out_len: int, prefix_id: int = -1, prefix_len: int = 0):
        self.seq, self.idx, self.out_len = seq, idx, out_len
        self.gen_iter = self.kv0 = self.iter0 = self.version = 0
        self.held = 0  # device KV it keeps while paused
        self.first: float | None = None
        self.done: float | None = None
        self.prefix_id, self.prefix_len = prefix_id, prefix_len
        self.replica = -1


@dataclass
class Block:
    start: float
    batch: int
    ctx0: float
    k: int
    extra: float  # prefill + unhidden copy time, paid in the first iteration
    new: list[Job] = field(default_factory=list)


@dataclass
class EngineStats:
    iterations: int = 0
    preemptions: int = 0  # pauses plus evictions of running requests
    pauses: int = 0
    kv_preemptions: int = 0  # evictions the policy chose because KV ran short
    swapped_tokens: int = 0
    copy_charged_s: float = 0.0
    prefill_tokens: int = 0
    plans: int = 0
    rejected: int = 0


class EngineSim:
    def __init__(self, policy: Policy, cost: CostModel):
        self.policy, self.cost = policy, cost
        # A plan may stop a runner for a waiting request (preemption, or `keep_longest`'s anchor):
        # arrivals interrupt a block, and runners' tokens are brought up to date before a plan.
        self.preemptive = may_stop_runners(policy)
        self.heap_queue = policy.static_keys and not self.preemptive  # else a plain list
        self.slot_cap = policy.config.active_cap(cost.max_batch)
        self.now = 0.0
        self.iter = 0
        self.ctx = 0  # KV tokens held by the running batch
        self.held = 0  # KV tokens held by paused requests
        self.running: list[SeqState] = []
        self.paused: list[SeqState] = []
        self.waiting: list[SeqState] = []  # list queue
        self.wheap: list = []  # heap queue: (key, n, seq)
        self.jobs: dict[SeqState, Job] = {}
        self.finish_heap: list = []
        self.level_heap: list = []
        self.block: Block | None = None
        self.horizon = math.inf
        self.stats = EngineStats()
        self._n = 0
        # Admissions already decided at the current boundary, paid in the next iteration.
        self._copy_s = self._prefill_s = 0.0
        self._new: list[Job] = []

    # --- queries ------------------------------------------------------------------------------
    def n_waiting(self) -> int:
        return len(self.waiting) + len(self.wheap) + len(self.paused)

    def load(self) -> int:
        return len(self.running) + self.n_waiting()

    def interruptible(self) -> bool:
        """Would a new arrival change what runs before the current block ends?"""
        return self.preemptive or len(self.running) < self.slot_cap or self.block is None

    def duration(self, j: int) -> float:
        b = self.block
        c = self.cost
        per = max(c.step_min_s, c.step_base_s + c.step_per_seq_s * b.batch + c.step_per_ctx_s * b.ctx0)
        return j * per + c.step_per_ctx_s * b.batch * j * (j - 1) / 2 + (b.extra if j else 0.0)

    def iters_until(self, dt: float) -> int:
        """Smallest j >= 1 whose block prefix lasts at least dt."""
        b = self.block
        c = self.cost
        qa = c.step_per_ctx_s * b.batch / 2
        # The floor is applied at the block's start (context growth within a block is small).
        lin = max(c.step_min_s, c.step_base_s + c.step_per_seq_s * b.batch + c.step_per_ctx_s * b.ctx0) - qa
        rest = max(dt - b.extra, 0.0)
        j = rest / lin if qa == 0 else (-lin + math.sqrt(lin * lin + 4 * qa * rest)) / (2 * qa)
        j = max(1, math.ceil(j - 1e-9))
        while j > 1 and self.duration(j - 1) >= dt:
            j -= 1
        while self.duration(j) < dt:
            j += 1
        return j

    # --- requests in ----------------------------------------------------------------------------
    def submit(self, job: Job, now: float) -> None:
        seq = job.seq
        self.jobs[seq] = job
        self.policy.on_arrival(seq, now)
        self._enqueue(seq, now)

    def _enqueue(self, seq: SeqState, now: float) -> None:
        if seq.phase is Phase.PAUSED:
            self.paused.append(seq)
        elif not self.heap_queue:
            self.waiting.append(seq)
        else:
            self._n += 1
            heapq.heappush(self.wheap, (self.policy.key(seq, now), self._n, seq))

    def take_waiting(self, n: int) -> list[SeqState]:
        """Give up the `n` worst-placed queued, never-started requests (rebalancing moves them)."""
        pool = self.waiting if not self.heap_queue else [e[2] for e in self.wheap]
        fresh = [s for s in pool if s.phase is Phase.WAITING and s.generated == 0]
        out = self.policy.victim_order(fresh, self.now)[:n]
        gone = {id(s) for s in out}
        if not self.heap_queue:
            self.waiting = [s for s in self.waiting if id(s) not in gone]
        else:
            self.wheap = [e for e in self.wheap if id(e[2]) not in gone]
            heapq.heapify(self.wheap)
        return out

    def give_running(self, n: int) -> list[Job]:
        """Preempt the policy's first `n` victims and hand them over (migration to another replica)."""
        for seq in self.running:
            self._sync(self.jobs[seq])
        out = []
        for seq in self.policy.victim_order(self.running, self.now)[:n]:
            self._copy_s += self._stop(seq, evict=True)
            self.policy.on_preempted(seq, "swapped", self.now)
            out.append(self.jobs.pop(seq))
        return out

    def adopt(self, job: Job, copy_s: float) -> None:
        """Take a migrated, swapped-out request as it is (its level and progress kept)."""
        self.jobs[job.seq] = job
        self._copy_s += copy_s
        job.gen_iter = self.iter
        self._enqueue(job.seq, self.now)

    # --- time ---------------------------------------------------------------------------------
    def run_to(self, t: float) -> list[Job]:
        """Advance to the first iteration boundary at or after t (idle: jump to t); return finished jobs."""
        if self.block is None:
            self.now = max(self.now, t)
            return []
        if t <= self.block.start:
            return []
        if self.horizon <= t:
            return self.advance()
        return self._commit(self.iters_until(t - self.block.start))

    def advance(self) -> list[Job]:
        """Run the current block to its end (the next internal event)."""
        return self._commit(self.block.k) if self.block is not None else []

    def _commit(self, j: int) -> list[Job]:
        b = self.block
        if b.new:
            first = b.start + self.duration(1)
            for job in b.new:
                job.first = first
        self.now = b.start + self.duration(j)
        self.iter += j
        self.ctx += b.batch * j
        self.stats.iterations += j
        self.stats.copy_charged_s += self.cost.charged_copy_s(self._copy_s, self.duration(1) - b.extra)
        self.block = None
        self._copy_s = self._prefill_s = 0.0
        self._new = []
        done = self._events()
        self.schedule()
        return done

    def _sync(self, job: Job) -> None:
        n = self.iter - job.gen_iter
        if n:
            self.policy.on_tokens(job.seq, n, self.now)
            job.gen_iter = self.iter

    def _events(self) -> list[Job]:
        done: list[Job] = []
        fh = self.finish_heap
        while fh and fh[0][0] <= self.iter:
            _, _, version, job = heapq.heappop(fh)
            if version != job.version:
                continue
            self._sync(job)
            job.version += 1
            job.done = self.now
            self.ctx -= job.kv0 + (self.iter - job.iter0)
            self.running.remove(job.seq)
            self.policy.on_finish(job.seq, self.now)
            del self.jobs[job.seq]
            done.append(job)
        lh = self.level_heap
        while lh and lh[0][0] <= self.iter:
            _, _, version, job = heapq.heappop(lh)
            if version == job.version:
                self._sync(job)
                self._push_level(job)
        return done

    def _push_level(self, job: Job) -> None:
        d = self.policy.tokens_to_next_event(job.seq)
        if d != math.inf:
            self._n += 1
            heapq.heappush(self.level_heap, (self.iter + max(1, math.ceil(d)), self._n, job.version, job))

    # --- decisions ----------------------------------------------------------------------------
    def schedule(self) -> None:
        """At an iteration boundary: plan if anything could change, then lay out the next block."""
        budget_hit = False
        if should_plan(self.policy, len(self.running), self.n_waiting(), self.cost.max_batch,
                       self._free() < len(self.running)):
            budget_hit = self._plan()
        if self._free() < len(self.running):
            raise RuntimeError("the policy left the running set without KV for its next step")
        if not self.running:
            self.block, self.horizon = None, math.inf
            if self._reject_unfittable() and self.n_waiting():
                self.schedule()
            return
        b = len(self.running)
        self.block = Block(self.now, b, self.ctx, 1, 0.0, self._new)
        charged = self.cost.charged_copy_s(self._copy_s, self.duration(1))
        self.block.extra = self._prefill_s + charged
        # The step's prefill budget ran out with requests still waiting: plan again next step.
        self.block.k = 1 if budget_hit and self.n_waiting() else self._block_len(b)
        self.horizon = self.now + self.duration(self.block.k)

    def _block_len(self, b: int) -> int:
        k = self.finish_heap[0][0] - self.iter if self.finish_heap else 1
        k = min(k, self._free() // b)
        if self.preemptive and self.n_waiting():
            if self.level_heap:
                k = min(k, self.level_heap[0][0] - self.iter)
            deadline = self.policy.next_event_time(self.waiting + self.paused, self.now)
            if deadline < math.inf:
                k = min(k, self.iters_until(deadline - self.now))
        return max(int(k), 1)

    def _queued(self, slots: int) -> list[SeqState]:
        """What the step sees of the queue: all of it, or, from the heap, the paused requests and
        the best `window(slots)` of the rest (taken out; `_plan` puts back what stays)."""
        if not self.heap_queue:
            return self.waiting + self.paused
        out = list(self.paused)
        while self.wheap and len(out) - len(self.paused) < self.policy.window(slots):
            out.append(heapq.heappop(self.wheap)[2])
        return out

    def _plan(self) -> bool:
        """One `step`; True where admission spent the step's prefill budget."""
        slots = self.slot_cap - len(self.running)
        cands = self._queued(slots)
        if self._free() < len(self.running) or slots < 0 or (self.preemptive and (
                len(cands) > slots or sum(kv_need(s) for s in cands) > self._free())):
            for seq in self.running:
                self._sync(self.jobs[seq])
        budget = self.cost.max_batched_tokens
        view = View(list(self.running), cands, self.cost.max_batch, self._free(), self.now,
                    can_pause=self.cost.can_pause,
                    prefill_tokens=max(budget - len(self.running), 1) if budget else None)
        self.stats.plans += 1
        before = self.policy.kv_evictions
        prefilled = self.stats.prefill_tokens
        plan = step(self.policy, view, self)
        self.stats.kv_preemptions += self.policy.kv_evictions - before
        self.paused = [s for s in self.paused if s.phase is Phase.PAUSED] + \
            [s for s in plan.preempt if s.phase is Phase.PAUSED]
        if not self.heap_queue:
            self.waiting = [s for s in self.waiting if s.phase is not Phase.RUNNING] + \
                [v for v in plan.evict if v.phase is not Phase.RUNNING]
        else:
            back = {id(s): s for s in [*cands, *plan.evict]}
            for s in back.values():
                if s.phase in (Phase.WAITING, Phase.SWAPPED):
                    self._enqueue(s, s.arrival)
        budget = view.prefill_tokens
        return budget is not None and self.stats.prefill_tokens - prefilled >= budget

    # --- the `engine.policy.step.Driver` protocol -------------------------------------------------
    def evict(self, seq: SeqState) -> tuple[str, int]:
        self._copy_s += self._stop(seq, evict=True)
        return "swapped", 0

    def pause(self, seq: SeqState) -> None:
        self._copy_s += self._stop(seq, evict=False)

    def admit(self, seq: SeqState) -> None:
        c, p, job = self._admit(seq)
        self._copy_s += c
        self._prefill_s += p
        if job.first is None:
            self._new.append(job)

    def order_running(self, best_first: list[SeqState]) -> None:
        """Nothing to do: the simulated engine never stops anyone by itself (the plan keeps KV)."""

    def _free(self) -> int:
        return self.cost.kv_tokens - self.ctx - self.held

    def _stop(self, seq: SeqState, evict: bool) -> float:
        """Carry out a pause (KV kept) or an eviction (KV to host); return the copy seconds. The
        caller reports it to the policy (`step` does for a plan's)."""
        job = self.jobs[seq]
        if seq.phase is Phase.PAUSED:  # evicting a paused request: its KV leaves the device
            self.held -= job.held
            self.stats.swapped_tokens += seq.context_len
            return seq.context_len * self.cost.swap_s_per_token
        self._sync(job)
        job.version += 1
        kv = job.kv0 + (self.iter - job.iter0)
        self.ctx -= kv
        self.running.remove(seq)
        self.stats.preemptions += 1
        if not evict:
            job.held = kv
            self.held += kv
            self.stats.pauses += 1
            return 0.0
        self.stats.swapped_tokens += seq.context_len
        return seq.context_len * self.cost.swap_s_per_token

    def _admit(self, seq: SeqState) -> tuple[float, float, Job]:
        job = self.jobs[seq]
        copy_s = prefill_s = 0.0
        if seq.phase is Phase.PAUSED:
            need = job.held
            self.held -= job.held
        elif seq.phase is Phase.SWAPPED:
            need = kv_need(seq)
            copy_s = seq.context_len * self.cost.swap_s_per_token
            self.stats.swapped_tokens += seq.context_len
        else:
            need = kv_need(seq)
            tokens = max(seq.context_len - seq.cached_len, 1)
            prefill_s = self.cost.prefill_s(tokens)
            self.stats.prefill_tokens += tokens
        seq.phase = Phase.RUNNING
        seq.last_run = self.now
        job.gen_iter = job.iter0 = self.iter
        job.kv0 = need
        self.ctx += need
        self.running.append(seq)
        self._n += 1
        heapq.heappush(self.finish_heap, (self.iter + job.out_len - seq.generated, self._n, job.version, job))
        self._push_level(job)
        return copy_s, prefill_s, job

    def _reject_unfittable(self) -> bool:
        """Nothing runs yet something waits: it can never fit the device; drop it (counted)."""
        keep = []
        pool = self.waiting if not self.heap_queue else [e[2] for e in self.wheap]
        for seq in pool:
            if kv_need(seq) + 1 > self.cost.kv_tokens:  # no room to grow even alone
                self.stats.rejected += 1
                job = self.jobs.pop(seq)
                job.done = math.nan
            else:
                keep.append(seq)
        if len(keep) != len(pool):
            self.waiting = keep if not self.heap_queue else []
            if self.heap_queue:
                self.wheap = []
                for s in keep:
                    self._enqueue(s, s.arrival)
        return len(keep) != len(pool)
