"""The hook bodies: SGLang's scheduler objects in, the policy's decisions applied.

One `Driver` per scheduler process. Each scheduling pass SGLang sorts its waiting queue
(`calc_priority`); there the driver asks the policy for one `plan` (`can_pause=False`: SGLang keeps
no KV for a request it does not schedule, so every stop is an eviction), orders the queue by
`policy.key`, and keeps the plan's victims. Admission is the plan's: a request it does not admit is
passed over (`add_one_req` answers CONTINUE without adding it), so `max_active` and
`kv_reserve_steps` hold; SGLang's memory check still refuses what does not fit. When a candidate
the plan admits finds no slot or no KV tokens, the driver releases the plan's victims — never any
others — and SGLang retries it. A victim's KV is checkpointed into the radix tree (`release.py`).
Decode-OOM retraction takes `victim_order`.

Tensor-parallel ranks each run this driver on the same requests and must build the same batch, so
every decision is a function of what all ranks share: time is counted in engine steps (each batch
result advances the clock by the policy's step estimate, measured only where there is one rank),
and knob changes ride SGLang's own request broadcast, applied at the same pass on every rank.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.policy import Phase, Policy, PolicyConfig, SeqState, make_policy
from engine.policy.reconfigure import reconfigured
from engine.sglang import release, seqmap

log = logging.getLogger(__name__)

# A step slower than this is an idle gap, not an engine step: it must not teach the policy's clock.
_MAX_STEP_S = 1.0


@dataclass(frozen=True)
class KnobChange:
    """Knobs in flight from the leader rank to all ranks, inside SGLang's request broadcast."""

    knobs: dict


class Driver:
    def __init__(self, config: PolicyConfig, clock: Callable[[], float] = time.monotonic,
                 ranks: int | None = None):
        self.clock = clock  # wall time: read only to measure step times, never to decide
        # Scheduler processes planning the same batch (TP x PP); None: SGLang's, on the first pass.
        self.ranks = ranks or 1
        self.rank = 0
        self.now = 0.0  # the policy's clock: engine steps, each worth the step-time estimate
        self.policy: Policy = make_policy(config)
        self.queued: set[int] = set()  # id() of the SeqStates waiting at the current plan
        self.admit: set[int] = set()  # ... and of those it admits, not yet offered to SGLang
        self.victims: list[Any] = []  # Reqs the current plan preempts, in its order
        self.preempting = False
        self.last_kept = 0  # KV tokens the last preemption's release kept in the tree
        self.last_batch_wall: float | None = None
        self.stats = {"passes": 0, "steps": 0, "preempted": 0, "kept_kv_tokens": 0, "retracted": 0,
                      "refused": 0, "readmitted": 0, "readmit_kept_tokens": 0, "readmit_prefix_tokens": 0,
                      "readmit_host_tokens": 0, "readmit_short": 0}
        self.proposed: PolicyConfig | None = None  # from the control plane, for the leader to share
        self.pending: PolicyConfig | None = None  # shared with every rank: applied at the next pass
        self.on_first_pass: Callable[[], None] | None = None  # starts the control plane
        self.bound = ranks is not None

    def configure(self, config: PolicyConfig) -> None:
        """A fresh policy with these knobs (start-up, tests); live changes go through `request_config`."""
        self.policy = make_policy(config, self.policy.costs, self.policy.lengths)

    def request_config(self, config: PolicyConfig) -> None:
        """From another thread (the control plane). The leader rank's proposal reaches every rank
        through SGLang's request broadcast (`share_knobs`); others' are never used."""
        self.proposed = config

    def bind(self) -> None:
        """This process's place among the ranks that plan one batch (SGLang's published context)."""
        from sglang.srt.runtime_context import get_parallel

        par = get_parallel()
        self.ranks = max(int(par.tp_size or 1), 1) * max(int(par.pp_size or 1), 1)
        self.rank = int(par.tp_rank or 0) + int(par.pp_rank or 0) * int(par.tp_size or 1)
        self.bound = True
        log.info("skipjoin policy %s scheduling (rank %d of %d, pid %d)", self.policy.config.name,
                 self.rank, self.ranks, os.getpid())

    def _apply_pending(self, reqs) -> None:
        config, self.pending = self.pending, None
        seqs = [s for s in map(seqmap.seq_of, reqs) if s is not None]
        self.policy = reconfigured(self.policy, config, seqs, self.now)

    # --- knobs to every rank: AROUND SchedulerRequestReceiver._broadcast_reqs_across_ranks ---------
    def share_knobs(self, original, receiver, recv_reqs, local_reqs=None, *args, **kwargs):
        """The leader (the rank that read the requests: `recv_reqs` is not None; with attention
        data parallelism, each group's) adds the proposed knobs to what it broadcasts; every rank
        takes them out of what it received, in the same loop iteration, and applies them at its
        next pass."""
        if recv_reqs is not None and self.proposed is not None:
            change, self.proposed = KnobChange(self.proposed.to_dict()), None
            local_reqs = [*(local_reqs or []), change]
        received = original(receiver, recv_reqs, local_reqs, *args, **kwargs)
        if not any(isinstance(r, KnobChange) for r in received):
            return received
        for change in (r for r in received if isinstance(r, KnobChange)):
            self.pending = PolicyConfig().updated(change.knobs)
        return [r for r in received if not isinstance(r, KnobChange)]

    # --- waiting order and the pass's plan: AROUND SchedulePolicy.calc_priority ----------------
    def order_waiting(self, original, sched_policy, waiting_queue, running_batch=None, *args, **kwargs):
        original(sched_policy, waiting_queue, running_batch, *args, **kwargs)  # prefix matches
        now = self.now
        self.stats["passes"] += 1
        if not self.bound:
            self.bind()
        if self.on_first_pass is not None:
            start, self.on_first_pass = self.on_first_pass, None
            start()
        running = [r for r in (running_batch.reqs if running_batch is not None else []) if not r.finished()]
        if self.pending is not None:
            self._apply_pending(list(waiting_queue) + running)
        tree = sched_policy.tree_cache
        matched = release.matches_waiting(tree)
        waiting = self._states(waiting_queue, now)
        for req in waiting_queue:
            if not matched and getattr(req, seqmap.KEPT, 0):
                release.match_prefix(req, tree)  # what of its checkpoint the tree still holds
            seqmap.sync_waiting(req, seqmap.seq_of(req))
        resident = self._states(running, now)
        for seq in resident:
            seq.phase = Phase.RUNNING
        cap = self._capacity(tree, running)
        self.policy.before_plan(waiting, now)
        candidates = self.policy.candidates(waiting, cap.max_seqs - len(running), now)
        plan = self.policy.plan(resident, candidates, cap, now)
        self.queued = {id(s) for s in waiting}
        self.admit = {id(s) for s in plan.admit}
        # With can_pause=False every stop is an eviction; `preempt` stays empty, but is honoured.
        doomed = {id(s) for s in plan.evict + plan.preempt}
        self.victims = [r for r in running if id(seqmap.seq_of(r)) in doomed]
        waiting_queue.sort(key=lambda r: self.policy.key(seqmap.seq_of(r), now))
        for req in list(waiting_queue) + running:
            seqmap.mirror_level(req, seqmap.seq_of(req))

    def _states(self, reqs, now: float) -> list[SeqState]:
        return [seqmap.track(r, self.policy, now) for r in reqs]

    def _capacity(self, tree_cache, running):
        """Free device KV now: free plus evictable tree tokens (the protocol's meaning). SGLang's
        admission also reserves what running requests may still generate; the policy keeps its
        own reserve (`kv_reserve_steps`), and where SGLang's is the larger, SGLang's `NO_TOKEN`
        stands unless the policy's plan also finds KV short."""
        free_kv = tree_cache.token_to_kv_pool_allocator.available_size() + tree_cache.evictable_size()
        free_slots = tree_cache.req_to_token_pool.available_size()
        return seqmap.capacity(self.policy, len(running), free_slots, free_kv)

    # --- preemption: REPLACE PrefillAdder.preempt_to_schedule, AROUND add_one_req ---------------
    def preempt_for(self, adder, req) -> bool:
        """Release the plan's victims until `req` fits; False (and nothing released) if it is not
        a candidate the plan admits, or the plan's victims cannot make room by SGLang's count."""
        from sglang.srt.managers.schedule_policy import CLIP_MAX_NEW_TOKENS

        if id(seqmap.seq_of(req)) not in self.admit:
            return False
        running = [r for r in adder.running_batch.reqs if r not in adder.preempt_list and not r.finished()]
        pool = [v for v in self.victims if v in running]
        # SGLang's own count (as in stock preempt_to_schedule), crediting each victim's KV as well:
        # only what its release frees, not a prefix that requests staying in the batch also hold.
        max_new = min(req.sampling_params.max_new_tokens, CLIP_MAX_NEW_TOKENS)
        short = (len(req.full_untruncated_fill_ids) - req.prefix_len + max_new
                 + adder._request_slot_reserve_for_req(req) - adder.rem_total_tokens)
        chosen: list[Any] = []
        for victim in pool:
            if chosen and short <= 0:
                break
            stay = [r for r in running if r is not victim and r not in chosen and r not in pool]
            freed = release.releasable_kv(victim, stay, chosen)
            chosen.append(victim)
            short -= adder._get_running_request_total_token_offset(victim) + freed
        if not chosen or short > 0:
            return False
        self._release(adder, chosen)
        return True

    def _release(self, adder, chosen) -> None:
        batch, now = adder.running_batch, self.now
        keep, released = [], 0
        with self._preempting():
            for i, r in enumerate(batch.reqs):
                if r not in chosen:
                    keep.append(i)
                    continue
                adder.memory_budget.total_offset -= adder._get_running_request_total_token_offset(r)
                released += 1
                self.last_kept = 0
                batch.release_req(i, len(batch.reqs) - released)
                self._report_preempted(r, now)
        batch.filter_batch(keep_indices=keep)
        adder.preempt_list.extend(chosen)
        self.victims = [v for v in self.victims if v not in chosen]

    def add_one_req(self, original, adder, req, *args, **kwargs):
        """The plan's admission: a request it looked at and did not admit is passed over (the
        scheduler goes on to the next), and once every admitted one has been seen the pass ends."""
        from sglang.srt.managers.schedule_policy import AddReqResult

        seq = seqmap.seq_of(req)
        if seq is not None and id(seq) in self.queued and id(seq) not in self.admit:
            self.stats["refused"] += 1
            return AddReqResult.CONTINUE if self.admit else AddReqResult.OTHER
        result = original(adder, req, *args, **kwargs)
        if not self._added(adder, req) and result.name == "NO_TOKEN" and adder.preempt_to_schedule(req):
            result = original(adder, req, *args, **kwargs)
        if seq is not None:
            self.admit.discard(id(seq))
        if self._added(adder, req) and seq is not None:
            seq.phase, seq.last_run = Phase.RUNNING, self.now
            self._readmitted(req)
        return result

    def _readmitted(self, req) -> None:
        """A preempted request back in the batch: what of its checkpoint the tree still had."""
        kept = getattr(req, seqmap.KEPT, 0)
        if not kept:
            return
        setattr(req, seqmap.KEPT, 0)
        host = int(getattr(req, "host_loaded_length", 0) or 0)  # HiCache load-back, in `prefix_len` too
        prefix = int(req.prefix_len or 0)
        self.stats["readmitted"] += 1
        self.stats["readmit_kept_tokens"] += kept
        self.stats["readmit_prefix_tokens"] += prefix
        self.stats["readmit_host_tokens"] += host
        if prefix < kept - 1:
            self.stats["readmit_short"] += 1

    @staticmethod
    def _added(adder, req) -> bool:
        return bool(adder.can_run_list) and adder.can_run_list[-1] is req

    @contextmanager
    def _preempting(self):
        self.preempting = True
        try:
            yield
        finally:
            self.preempting = False

    # --- KV kept on preemption: AROUND schedule_batch.release_req ------------------------------
    def release_req(self, original, **kwargs):
        """Preemptions checkpoint the KV into the radix tree; decode-OOM retraction stays stock
        (it needs the room at once). Finished requests never come here."""
        if not self.preempting or not release.can_checkpoint(kwargs["tree_cache"]):
            return original(**kwargs)
        self.last_kept = release.checkpoint_release(kwargs["req"], kwargs["tree_cache"],
                                                    kwargs.get("hisparse_coordinator"))
        self.stats["kept_kv_tokens"] += self.last_kept
        return True

    def _report_preempted(self, req, now: float) -> None:
        """The checkpoint is device KV in the tree ("recomputed" with that prefix cached): nothing
        is copied at preemption. HiCache writes it to host only if it is evicted later, and drops
        it when the host pool is full; re-admission counts what came back (`_readmitted`)."""
        seq = seqmap.seq_of(req)
        self.stats["preempted"] += 1
        setattr(req, seqmap.KEPT, self.last_kept)
        if seq is None:
            return
        self.policy.on_preempted(seq, "recomputed", now)
        seq.cached_len = min(self.last_kept, seq.context_len)

    # --- decode-OOM retraction: REPLACE ScheduleBatch._get_decode_retraction_order, AFTER retract_decode
    def retraction_order(self, reqs) -> list[int]:
        """Indices best-to-keep first (SGLang retracts from the end): the policy's victim order, reversed."""
        now = self.now
        seqs = [seqmap.track(r, self.policy, now) for r in reqs]
        worst_first = self.policy.victim_order(seqs, now)
        index = {id(s): i for i, s in enumerate(seqs)}
        return [index[id(s)] for s in reversed(worst_first)]

    def after_retract(self, result, batch, *args, **kwargs):
        retracted = result[0]
        for req in retracted:
            seq = seqmap.seq_of(req)
            self.stats["retracted"] += 1
            if seq is not None:
                self.policy.on_preempted(seq, "recomputed", self.now)

    # --- the clock and demotion per quantum: AFTER Scheduler.process_batch_result ---------------
    def after_batch_result(self, result, scheduler, batch, *args, **kwargs):
        self.tick(batch)
        self.account(batch.reqs, self.now)

    def tick(self, batch) -> None:
        """One engine step. The step time is learnt from the wall clock only where one rank plans
        the batch: ranks' clocks differ, and a decision taken from them would split the batch."""
        if self.ranks == 1 and batch.forward_mode.is_decode():
            wall = self.clock()
            if self.last_batch_wall is not None and wall - self.last_batch_wall < _MAX_STEP_S:
                self.policy.costs.observe_step(wall - self.last_batch_wall, batch=len(batch.reqs))
            self.last_batch_wall = wall
        self.stats["steps"] += 1
        self.now += self.policy.costs.step_s

    def account(self, reqs, now: float) -> None:
        """Tokens since the last look go to the policy (it demotes); finished requests leave it."""
        for req in reqs:
            seq = seqmap.seq_of(req)
            if seq is None or seq.phase is Phase.FINISHED:
                continue
            new = len(req.output_ids) - seq.generated
            if new > 0:
                self.policy.on_tokens(seq, new, now)
                seqmap.mirror_level(req, seq)
            if req.finished():
                self.policy.on_finish(seq, now)
