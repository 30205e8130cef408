"""The skip-join MLFQ inside vLLM's V1 scheduler: one mixin, a synchronous and an async class.

Before every `schedule()` the mixin asks `engine.policy` for a `Plan` and applies it with vLLM's
own mechanics:
- paused requests (`plan.preempt`) leave `self.running` for the step: their KV and model-runner
  state stay, they are simply not scheduled (zero copy);
- evicted requests (`plan.evict`) go through vLLM's `_preempt_request`: blocks freed, hashed blocks
  stay in the prefix cache (on GPU the offloading connector reloads them from host memory);
- `self.running` is put in the policy's order (best first, so vLLM's own last-resort victim,
  `running[-1]` or the largest `priority`, is the policy's first victim too);
- the waiting queue is put in the policy's order and vLLM may admit exactly `plan.admit`'s count.
vLLM then allocates blocks and builds the batch as usual. Nothing here decides.
"""

from __future__ import annotations

import logging
import threading
import time

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from engine.policy import Capacity, Phase, PolicyConfig, SeqState, make_policy
from engine.policy.reconfigure import reconfigured
from engine.vllm.control import EngineControl
from engine.vllm.hidden_predict import InlinePredictions
from engine.vllm.queue import PolicyQueue
from engine.vllm.settings import EngineSettings
from engine.vllm.table import SeqTable

log = logging.getLogger("skipjoin.engine")
STATS_EVERY_S = 0.5


class SkipJoinMixin:
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sj = EngineSettings.from_env()
        self.sj_policy = make_policy(self.sj.policy)
        self.sj_table = SeqTable(self.sj_policy)
        self.sj_paused: dict[str, Request] = {}
        self.sj_lock = threading.Lock()  # knob changes arrive on the control threads
        self.sj_pending: PolicyConfig | None = None
        self.sj_counts = {"pauses": 0, "evictions": 0, "resumes": 0, "steps": 0, "inline_predictions": 0}
        self.sj_engine_active = self.max_num_active_reqs
        self.sj_step_started: float | None = None
        self.sj_snapshot_at = 0.0
        if len(self.waiting) or len(self.running):
            raise RuntimeError("skipjoin must replace the waiting queue before any request arrives")
        self.waiting = PolicyQueue()
        self.sj_snapshot = self._sj_stats()
        self.sj_control = EngineControl(self.sj, self.sj_config_changes, self.sj_current_config,
                                        lambda: self.sj_snapshot)
        self.sj_control.start()
        self.sj_inline = InlinePredictions(self.sj.redis_url)
        self.sj_inline.start()

    # --- vLLM hooks ------------------------------------------------------------------------------
    def add_request(self, request: Request) -> None:
        known = request.request_id in self.requests
        super().add_request(request)
        if not known and request.request_id in self.requests:
            self.sj_table.add(request, time.monotonic())

    def schedule(self, *args, **kwargs):
        now = time.monotonic()
        self.sj_step_started = now
        self._sj_apply_pending(now)
        self.sj_table.sync_tokens(self.running, now)
        paused = self._sj_apply_plan(now)
        try:
            return super().schedule(*args, **kwargs)
        finally:
            self.max_num_active_reqs = self.sj_engine_active
            self.running.extend(paused)  # still RUNNING for vLLM: aborts and stats find them

    def update_from_output(self, scheduler_output, model_runner_output):
        out = super().update_from_output(scheduler_output, model_runner_output)
        if self.sj_step_started is not None and scheduler_output.total_num_scheduled_tokens:
            self.sj_policy.costs.observe_step(time.monotonic() - self.sj_step_started)
        self.sj_counts["steps"] += 1
        now = time.monotonic()
        self._sj_inline_predictions(now)
        if now - self.sj_snapshot_at >= STATS_EVERY_S or not self.sj_table.seqs:  # idle: no later step
            self.sj_snapshot, self.sj_snapshot_at = self._sj_stats(), now
        return out

    def _preempt_request(self, request: Request, timestamp: float, drop_stale_output: bool = False) -> None:
        super()._preempt_request(request, timestamp, drop_stale_output)
        self.sj_paused.pop(request.request_id, None)
        seq = self.sj_table.get(request)
        if seq is not None:  # freed blocks stay hashed: a resume finds what survives in the prefix cache
            seq.cached_len = 0
            self.sj_policy.on_preempted(seq, "recomputed", time.monotonic())
        self.sj_counts["evictions"] += 1

    def _free_request(self, request: Request, delay_free_blocks: bool = False):
        self.sj_paused.pop(request.request_id, None)
        self.sj_table.finish(request.request_id, time.monotonic())
        return super()._free_request(request, delay_free_blocks)

    def _sj_inline_predictions(self, now: float) -> None:
        """Requests flagged `skipjoin_predict` whose prefill ended this step: the policy hears
        their predicted length (the prediction itself is `hidden_predict`'s)."""
        take = getattr(self.connector, "take_inline", None)
        for feature in take() if take is not None else ():
            result = self.sj_inline.handle(feature, self.connector)
            if result.predicted is not None:
                self.sj_table.predict(feature.req_id, result.predicted, now)
                self.sj_counts["inline_predictions"] += 1

    # --- applying the plan -------------------------------------------------------------------------
    def _sj_capacity(self, active: int) -> Capacity:
        free_blocks = self.kv_cache_manager.block_pool.get_num_free_blocks()
        # A paused request keeps its model-runner state: bound how many wait that way.
        can_pause = active + len(self.sj_paused) < self.max_num_running_reqs
        return Capacity(max_seqs=self.sj_policy.config.active_cap(self.sj_engine_active),
                        free_kv_tokens=free_blocks * self.block_size, can_pause=can_pause)

    def _sj_apply_plan(self, now: float) -> list[Request]:
        """Apply the policy's plan; returns the paused requests taken out of `self.running`."""
        paused_ids = self.sj_paused
        active = [r for r in self.running if r.request_id not in paused_ids]
        running_seqs = [self._sj_seq(r, Phase.RUNNING, now) for r in active]
        queued = [self._sj_seq(r, Phase.WAITING, now) for r in self.waiting]
        queued += [self._sj_seq(r, Phase.PAUSED, now) for r in paused_ids.values()]
        cap = self._sj_capacity(len(active))
        candidates = self.sj_policy.candidates(queued, cap.max_seqs, now)
        plan = self.sj_policy.plan(running_seqs, candidates, cap, now)
        by_id = {r.request_id: r for r in self.running}
        wall = time.time()
        for seq in plan.evict:  # the order the protocol asks for: evict, pause, admit
            request = by_id[seq.rid]
            self.running.remove(request)
            self._preempt_request(request, wall)
        for seq in plan.preempt:
            paused_ids[seq.rid] = by_id[seq.rid]
            self.sj_policy.on_preempted(seq, "paused", now)
            self.sj_counts["pauses"] += 1
        admitted: list[Request] = []
        waiting_by_id = {r.request_id: r for r in self.waiting}
        for seq in plan.admit:
            if seq.rid in paused_ids:
                del paused_ids[seq.rid]
                seq.phase = Phase.RUNNING
                self.sj_counts["resumes"] += 1
            elif seq.rid in waiting_by_id:
                admitted.append(waiting_by_id[seq.rid])
        paused = list(paused_ids.values())
        key, seqs = self.sj_policy.key, self.sj_table.seqs
        running = [r for r in self.running if r.request_id not in paused_ids]
        running.sort(key=lambda r: key(seqs[r.request_id], now))
        for rank, request in enumerate(running):
            request.priority = rank  # vLLM's last-resort priority victim is the max: the policy's worst
        self.running = running
        chosen = {r.request_id for r in admitted}
        self.waiting.replace(admitted + [r for r in self.waiting if r.request_id not in chosen])
        # vLLM admits from the front while budgets last: exactly the plan's admissions, at most.
        self.max_num_active_reqs = min(self.sj_engine_active, len(running) + len(admitted))
        return paused

    def _sj_seq(self, request: Request, phase: Phase, now: float) -> SeqState:
        seq = self.sj_table.get(request) or self.sj_table.add(request, now)
        if seq.phase is not Phase.SWAPPED or phase is Phase.RUNNING:
            seq.phase = phase
        return seq

    # --- live knobs and stats (control threads) ----------------------------------------------------
    def sj_config_changes(self, changes: dict) -> dict:
        """Validate and queue knob changes (ValueError on bad input); applied at the next step."""
        with self.sj_lock:
            base = self.sj_pending or self.sj_policy.config
            new = base.updated(changes)
            self.sj_pending = new
        return new.to_dict()

    def sj_current_config(self) -> dict:
        return (self.sj_pending or self.sj_policy.config).to_dict()

    def _sj_apply_pending(self, now: float) -> None:
        with self.sj_lock:
            new, self.sj_pending = self.sj_pending, None
        if new is None:
            return
        self.sj_policy = reconfigured(self.sj_policy, new, self.sj_table.seqs.values(), now)
        self.sj_table.policy = self.sj_policy
        log.info("policy knobs now %s", new.to_dict())

    def _sj_stats(self) -> dict:
        """Built on the scheduler thread; the control threads only read the last snapshot."""
        running, waiting = self.get_request_counts()
        return {
            "running": running - len(self.sj_paused),
            "paused": len(self.sj_paused),
            "waiting": waiting,
            "live": len(self.sj_table.seqs),
            "levels": self.sj_table.levels(self.sj_policy.config.levels),
            "preemptions": self.sj_policy.preemptions,
            "promotions": self.sj_policy.promotions,
            "step_s": round(self.sj_policy.costs.step_s, 5),
            "kv_usage": round(self.kv_cache_manager.usage, 4),
            **self.sj_counts,
        }

    def shutdown(self) -> None:
        self.sj_control.stop()
        self.sj_inline.stop()
        super().shutdown()


class SkipJoinScheduler(SkipJoinMixin, Scheduler):
    """For vLLM's CPU build (the platform turns async scheduling off)."""


class SkipJoinAsyncScheduler(SkipJoinMixin, AsyncScheduler):
    """For vLLM's GPU build (async scheduling on)."""
