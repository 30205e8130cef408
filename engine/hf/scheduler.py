"""The skip-join MLFQ scheduler inside transformers' continuous batching.

A `Scheduler` subclass registered in transformers' SCHEDULER_MAPPING as "skipjoin". Each step it
mirrors the engine's requests into the policy's plain `SeqState`s, asks `policy.plan` who to preempt
and whom to admit, hands the victims to the host pool, and orders the candidates for transformers'
own budget and allocation logic (`_process_candidates`). One class serves every policy name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from transformers.generation.continuous_batching.requests import RequestState, RequestStatus
from transformers.generation.continuous_batching.scheduler import SCHEDULER_MAPPING, Scheduler

from engine.hf import device_blocks
from engine.policy import Capacity, Phase, Policy, SeqState


@dataclass
class Admission:
    """What the runner tells the scheduler about a request before transformers sees it."""

    arrival: float
    prompt_len: int
    predicted_len: float | None
    max_tokens: int
    full_prefill: bool  # hidden states wanted: never skip the prompt through the prefix cache


def generated_so_far(state: RequestState) -> int:
    """Generated tokens, counting those folded into the prompt by a recompute."""
    folded = len(state.initial_tokens) - state._true_initial_tokens if state._true_initial_tokens else 0
    return folded + len(state.generated_tokens)


class SkipJoinScheduler(Scheduler):
    def __init__(self, cache, safety_margin: float | None, max_requests_per_batch: int):
        super().__init__(cache, 0.15 if safety_margin is None else safety_margin, max_requests_per_batch)
        self.policy: Policy | None = None
        self.host = None  # HostSwap, attached by the runner once transformers has built it
        self.admissions: dict[str, Admission] = {}
        self.seqs: dict[str, SeqState] = {}
        self.prefix_hit_tokens = 0
        self.cached_by_rid: dict[str, int] = {}
        self.entries_by_level: dict[int, int] = {}

    def attach(self, policy: Policy, host) -> None:
        self.policy, self.host = policy, host

    # --- mirroring engine state into policy state --------------------------------------------------
    def _seq(self, state: RequestState, now: float) -> SeqState:
        seq = self.seqs.get(state.request_id)
        if seq is None:
            adm = self.admissions.get(state.request_id) or Admission(now, len(state.initial_tokens), None,
                                                                     state.max_new_tokens or 0, False)
            seq = SeqState(state.request_id, adm.arrival, adm.prompt_len, adm.predicted_len, adm.max_tokens)
            seq.cached_len = 0 if adm.full_prefill else self._cached_prefix(state)
            self.policy.on_arrival(seq, now)
            self.seqs[state.request_id] = seq
            self.entries_by_level[seq.level] = self.entries_by_level.get(seq.level, 0) + 1
        return seq

    def _cached_prefix(self, state: RequestState) -> int:
        if not self.cache.use_prefix_sharing:
            return 0
        lens = [len(a.match_prefix_blocks(state.initial_tokens)) * a.tokens_per_page
                for a in self.cache.cache_allocators.values()]
        return min(lens, default=0)

    def _sync_tokens(self, now: float) -> None:
        for state in self.active_requests.values():
            seq = self._seq(state, now)
            new = generated_so_far(state) - seq.generated
            if new > 0:
                self.policy.on_tokens(seq, new, now)
            seq.phase = Phase.RUNNING

    def retire(self, rid: str, now: float) -> None:
        seq = self.seqs.pop(rid, None)
        self.admissions.pop(rid, None)
        self.cached_by_rid.pop(rid, None)
        if seq is not None:
            self.policy.on_finish(seq, now)

    def on_preempted(self, state: RequestState, swapped: bool) -> None:
        seq = self.seqs.get(state.request_id)
        if seq is not None:
            self.policy.on_preempted(seq, swapped, time.monotonic())

    # --- transformers hooks ------------------------------------------------------------------------
    def _infer_request_tokens(self, state: RequestState, remove_from_waiting: set[str]) -> list[int]:
        adm = self.admissions.get(state.request_id)
        if adm is not None and adm.full_prefill and state.status == RequestStatus.PENDING:
            return state.remaining_prefill_tokens  # a prefix hit would hide prompt rows from the tap
        before = state.position_offset
        tokens = super()._infer_request_tokens(state, remove_from_waiting)
        if state.position_offset > before:
            hit = state.position_offset - before
            self.prefix_hit_tokens += hit
            if not state._true_initial_tokens:  # a recompute finding its own blocks is not the client's hit
                self.cached_by_rid.setdefault(state.request_id, hit)
        return tokens

    def finish_request(self, request_id: str) -> None:
        state = self.active_requests.get(request_id)
        if state is not None and state.status == RequestStatus.FINISHED and self.cache.use_prefix_sharing:
            self._hash_written_blocks(state)
        super().finish_request(request_id)

    def _hash_written_blocks(self, state: RequestState) -> None:
        # transformers skips hashing the blocks of a request's last forward once it has finished, so a
        # prefill-only probe would leave its final chunk out of the prefix cache for the request that follows.
        written = (state.initial_tokens + state.generated_tokens)[: state.position_offset]
        for allocator in self.cache.cache_allocators.values():
            if state.request_id in allocator.block_table:
                allocator.mark_complete_blocks(state.request_id, written, len(written))

    def clear_cancelled_requests(self) -> list[RequestState]:
        cancelled = super().clear_cancelled_requests()
        now = time.monotonic()
        for state in cancelled:
            self.retire(state.request_id, now)
        return cancelled

    def capacity(self) -> Capacity:
        page = next(iter(self.cache.cache_allocators.values())).tokens_per_page
        free_tokens = device_blocks.free_blocks(self.cache) * page
        return Capacity(max_seqs=self.max_requests_per_batch, free_kv_tokens=free_tokens)

    def schedule_batch(self, token_budget: int, cache_budget: int):
        now = time.monotonic()
        self._sync_tokens(now)
        waiting = [self._seq(self.waiting_requests[rid], now) for rid in self.waiting_requests_order]
        for seq in waiting:
            if self.waiting_requests[seq.rid].is_cpu_offloaded:
                seq.phase = Phase.SWAPPED
        running = [self.seqs[rid] for rid in self.active_requests]
        plan = self.policy.plan(running, [] if self.block_new_requests else waiting, self.capacity(), now)
        if plan.preempt:
            self.host.preempt([self.active_requests[s.rid] for s in plan.preempt])
        candidates = self._ordered_active(now) + [self.waiting_requests[s.rid] for s in plan.admit]
        removed: set[str] = set()
        scheduled, one_failed, fast_path, num_q, max_kv = self._process_candidates(
            candidates, token_budget, cache_budget, removed)
        self._cleanup_waiting_queue(removed)
        if not scheduled and one_failed:
            return None, fast_path, 0, 0
        return scheduled, fast_path, num_q, max_kv

    def _ordered_active(self, now: float) -> list[RequestState]:
        """Decoding first, then split prefills; best first in each (starvation victims come from the end)."""
        key = self.policy.key
        states = sorted(self.active_requests.values(), key=lambda s: key(self.seqs[s.request_id], now))
        return [s for s in states if s.status == RequestStatus.DECODING] + \
            [s for s in states if s.status == RequestStatus.PREFILLING]


SCHEDULER_MAPPING["skipjoin"] = SkipJoinScheduler
