"""The hook bodies: SGLang's scheduler objects in, the policy's decisions applied.

One `Driver` per scheduler process. Each scheduling pass SGLang sorts its waiting queue
(`calc_priority`); there the driver asks the policy for one `plan` (`can_pause=False`: SGLang keeps
no KV for a request it does not schedule, so every stop is an eviction), orders the queue by
`policy.key`, and keeps the plan's victims. Admission stays SGLang's (its memory budget is the
executor's safety check); when a candidate the plan admits finds no slot or no KV tokens, the
driver releases the plan's victims — never any others — and SGLang retries it. A victim's KV is
checkpointed into the radix tree (`release.py`). Decode-OOM retraction takes `victim_order`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

from engine.policy import Phase, Policy, PolicyConfig, SeqState, make_policy
from engine.policy.reconfigure import reconfigured
from engine.sglang import release, seqmap

# A step slower than this is an idle gap, not an engine step: it must not teach the policy's clock.
_MAX_STEP_S = 1.0


class Driver:
    def __init__(self, config: PolicyConfig, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.policy: Policy = make_policy(config)
        self.admit: set[int] = set()  # id() of the SeqStates the current plan admits
        self.victims: list[Any] = []  # Reqs the current plan preempts, in its order
        self.preempting = False
        self.last_kept = 0  # KV tokens the last preemption's release kept in the tree
        self.last_decode: float | None = None
        self.stats = {"passes": 0, "preempted": 0, "kept_kv_tokens": 0, "retracted": 0}
        self.pending: PolicyConfig | None = None  # knobs to apply at the start of the next pass
        self.on_first_pass: Callable[[], None] | None = None  # starts the control plane's threads

    def configure(self, config: PolicyConfig) -> None:
        """A fresh policy with these knobs (start-up, tests); live changes go through `request_config`."""
        self.policy = make_policy(config, self.policy.costs, self.policy.lengths)

    def request_config(self, config: PolicyConfig) -> None:
        """From another thread (the control plane): applied by the scheduler thread, between passes."""
        self.pending = config

    def _apply_pending(self, reqs, now: float) -> None:
        config, self.pending = self.pending, None
        seqs = [s for s in map(seqmap.seq_of, reqs) if s is not None]
        self.policy = reconfigured(self.policy, config, seqs, now)

    # --- waiting order and the pass's plan: AROUND SchedulePolicy.calc_priority ----------------
    def order_waiting(self, original, sched_policy, waiting_queue, running_batch=None, *args, **kwargs):
        original(sched_policy, waiting_queue, running_batch, *args, **kwargs)  # prefix matches
        now = self.clock()
        self.stats["passes"] += 1
        if self.on_first_pass is not None:
            start, self.on_first_pass = self.on_first_pass, None
            start()
        running = [r for r in (running_batch.reqs if running_batch is not None else []) if not r.finished()]
        if self.pending is not None:
            self._apply_pending(list(waiting_queue) + running, now)
        waiting = self._states(waiting_queue, now)
        for req in waiting_queue:
            seqmap.sync_waiting(req, seqmap.seq_of(req))
        resident = self._states(running, now)
        for seq in resident:
            seq.phase = Phase.RUNNING
        cap = self._capacity(sched_policy.tree_cache, running)
        candidates = self.policy.candidates(waiting, cap.max_seqs - len(running), now)
        plan = self.policy.plan(resident, candidates, cap, now)
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
        pool = [v for v in self.victims
                if v in adder.running_batch.reqs and v not in adder.preempt_list and not v.finished()]
        # SGLang's own count (as in stock preempt_to_schedule), crediting each victim's KV as well.
        max_new = min(req.sampling_params.max_new_tokens, CLIP_MAX_NEW_TOKENS)
        short = (len(req.full_untruncated_fill_ids) - req.prefix_len + max_new
                 + adder._request_slot_reserve_for_req(req) - adder.rem_total_tokens)
        chosen = []
        for victim in pool:
            if chosen and short <= 0:
                break
            chosen.append(victim)
            short -= adder._get_running_request_total_token_offset(victim) + victim.kv.kv_committed_len
        if not chosen or short > 0:
            return False
        self._release(adder, chosen)
        return True

    def _release(self, adder, chosen) -> None:
        batch, now = adder.running_batch, self.clock()
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
                self._report_preempted(r, batch.tree_cache, now)
        batch.filter_batch(keep_indices=keep)
        adder.preempt_list.extend(chosen)
        self.victims = [v for v in self.victims if v not in chosen]

    def add_one_req(self, original, adder, req, *args, **kwargs):
        result = original(adder, req, *args, **kwargs)
        if not self._added(adder, req) and result.name == "NO_TOKEN" and adder.preempt_to_schedule(req):
            result = original(adder, req, *args, **kwargs)
        if self._added(adder, req):
            seq = seqmap.seq_of(req)
            if seq is not None:
                seq.phase, seq.last_run = Phase.RUNNING, self.clock()
        return result

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

    def _report_preempted(self, req, tree_cache, now: float) -> None:
        """Checkpointed KV is the host tier's once HiCache is on ("swapped"); without it, it stays
        in the device tree until evicted: "recomputed" with that prefix cached."""
        seq = seqmap.seq_of(req)
        self.stats["preempted"] += 1
        if seq is None:
            return
        if self.last_kept and release.has_host_tier(tree_cache):
            self.policy.on_preempted(seq, "swapped", now)
        else:
            self.policy.on_preempted(seq, "recomputed", now)
            seq.cached_len = self.last_kept

    # --- decode-OOM retraction: REPLACE ScheduleBatch._get_decode_retraction_order, AFTER retract_decode
    def retraction_order(self, reqs) -> list[int]:
        """Indices best-to-keep first (SGLang retracts from the end): the policy's victim order, reversed."""
        now = self.clock()
        seqs = [seqmap.track(r, self.policy, now) for r in reqs]
        worst_first = self.policy.victim_order(seqs, now)
        index = {id(s): i for i, s in enumerate(seqs)}
        return [index[id(s)] for s in reversed(worst_first)]

    def after_retract(self, result, batch, *args, **kwargs):
        retracted = result[0]
        now = self.clock()
        for req in retracted:
            seq = seqmap.seq_of(req)
            self.stats["retracted"] += 1
            if seq is not None:
                self.policy.on_preempted(seq, "recomputed", now)

    # --- demotion per quantum: AFTER Scheduler.process_batch_result ----------------------------
    def after_batch_result(self, result, scheduler, batch, *args, **kwargs):
        now = self.clock()
        if batch.forward_mode.is_decode():
            if self.last_decode is not None and now - self.last_decode < _MAX_STEP_S:
                self.policy.costs.observe_step(now - self.last_decode, batch=len(batch.reqs))
            self.last_decode = now
        self.account(batch.reqs, now)

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

