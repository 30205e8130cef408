"""`engine.policy.step`'s `Driver` over vLLM's V1 scheduler: the plan carried out with vLLM's mechanics.

- `evict`: vLLM's `_preempt_request` (blocks freed; hashed blocks stay in the prefix cache, so a
  resume recomputes only what was evicted from it; on GPU the offloading connector reloads them);
- `pause`: the request leaves `running` for the step, keeping its KV blocks and model-runner state
  (zero copy);
- `admit`: a paused request rejoins; a waiting one goes to the front of the waiting queue, and
  vLLM may admit exactly the plan's count (it admits from the front while budgets last);
- `order_running`: `running` best first with `priority` = rank, so vLLM's own last-resort victim
  (`running[-1]`, or the largest `priority`) is the policy's first victim.
Nothing here decides.
"""

from __future__ import annotations

import time

from vllm.v1.request import Request

from engine.policy import Phase, SeqState
from engine.policy.step import View


class VllmDriver:
    """One step's driver; `sched` is the `SkipJoinMixin` scheduler."""

    def __init__(self, sched) -> None:
        self.s = sched
        self.by_id = {r.request_id: r for r in sched.running}  # active and paused
        self.waiting_by_id = {r.request_id: r for r in sched.waiting}
        self.admitted: list[Request] = []

    def view(self, now: float) -> View:
        s, paused = self.s, self.s.sj_paused
        active = [r for r in s.running if r.request_id not in paused]
        running = [self._seq(r, Phase.RUNNING, now) for r in active]
        queued = [self._seq(r, Phase.WAITING, now) for r in s.waiting]
        queued += [self._seq(r, Phase.PAUSED, now) for r in paused.values()]
        free_kv = s.kv_cache_manager.block_pool.get_num_free_blocks() * s.block_size
        # A paused request keeps its model-runner state: bound how many wait that way.
        can_pause = len(active) + len(paused) < s.max_num_running_reqs
        return View(running, queued, s.sj_engine_active, free_kv, now, can_pause=can_pause)

    def _seq(self, request: Request, phase: Phase, now: float) -> SeqState:
        seq = self.s.sj_table.get(request) or self.s.sj_table.add(request, now, arrived=False)
        if seq.phase is not Phase.SWAPPED or phase is Phase.RUNNING:
            seq.phase = phase
        return seq

    # --- the protocol ---------------------------------------------------------------------------
    def evict(self, seq: SeqState) -> tuple[str, int]:
        request = self.by_id[seq.rid]
        self.s.running.remove(request)
        self.s.sj_evicting = True  # the step reports this one
        try:
            self.s._preempt_request(request, time.time())
        finally:
            self.s.sj_evicting = False
        return "recomputed", 0  # what survives in the prefix cache is found again at admission

    def pause(self, seq: SeqState) -> None:
        self.s.sj_paused[seq.rid] = self.by_id[seq.rid]
        self.s.sj_counts["pauses"] += 1

    def admit(self, seq: SeqState) -> None:
        if self.s.sj_paused.pop(seq.rid, None) is not None:
            self.s.sj_counts["resumes"] += 1
        elif seq.rid in self.waiting_by_id:
            self.admitted.append(self.waiting_by_id[seq.rid])

    def order_running(self, best_first: list[SeqState]) -> None:
        s = self.s
        rank = {seq.rid: i for i, seq in enumerate(best_first)}
        for request in [*s.running, *self.admitted]:
            request.priority = rank.get(request.request_id, len(rank))
        running = [r for r in s.running if r.request_id not in s.sj_paused]
        running.sort(key=lambda r: r.priority)
        s.running = running
        chosen = {r.request_id for r in self.admitted}
        s.waiting.replace(self.admitted + [r for r in s.waiting if r.request_id not in chosen])
        s.max_num_active_reqs = min(s.sj_engine_active, len(running) + len(self.admitted))

    def paused(self) -> list[Request]:
        return list(self.s.sj_paused.values())


def step_shape(out, requests: dict) -> tuple[int, int, int] | None:
    """A scheduled step's decoding requests, context tokens and prompt tokens (what its time is
    fitted on); None for a step that computes nothing."""
    seqs = ctx = prefill = 0
    for rid, n in out.num_scheduled_tokens.items():
        request = requests.get(rid)
        if request is None:
            continue
        before = request.num_computed_tokens - n  # schedule() already counted this step's tokens
        prompt = max(0, min(n, request.num_prompt_tokens - before))
        prefill += prompt
        seqs += n > prompt
        ctx += request.num_computed_tokens
    return (seqs, ctx, prefill) if seqs or prefill else None


def engine_stats(sched) -> dict:
    """/stats: counts, level occupancy and the prices the policy plans with (fitted by the engine)."""
    running, waiting = sched.get_request_counts()
    policy = sched.sj_policy
    costs = policy.costs
    return {
        "running": running - len(sched.sj_paused),
        "paused": len(sched.sj_paused),
        "waiting": waiting,
        "live": len(sched.sj_table.seqs),
        "levels": sched.sj_table.levels(policy.config.levels),
        "preemptions": policy.preemptions,
        "promotions": policy.promotions,
        "step_s": round(costs.step_s, 5),
        "prices": {**sched.sj_fit.prices(), "decode_s_per_token": float(f"{costs.decode_s_per_token:.4g}"),
                   "prefill_s_per_token": float(f"{costs.prefill_s_per_token:.4g}")},
        "kv_usage": round(sched.kv_cache_manager.usage, 4),
        **sched.sj_counts,
    }
