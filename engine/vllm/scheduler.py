"""The skip-join MLFQ inside vLLM's V1 scheduler: one mixin, a synchronous and an async class.

Before every `schedule()` the mixin calls `engine.policy.step` once with its view of the requests;
`VllmDriver` (`driver.py`) carries the plan out with vLLM's own mechanics. vLLM then allocates
blocks and builds the batch as usual. After each step the mixin times it against its batch and
context (`StepCostFit`): the policy's prices are the engine's own. Nothing here decides.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request

from engine.policy import make_policy
from engine.policy.costfit import StepCostFit
from engine.policy.live import PendingConfig
from engine.policy.step import step
from engine.vllm.control import EngineControl
from engine.vllm.driver import VllmDriver, engine_stats, step_shape
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
        self.sj_pending = PendingConfig()  # knob changes arrive on the control threads
        self.sj_counts = {"pauses": 0, "evictions": 0, "evicted_tokens": 0, "resumes": 0, "steps": 0,
                          "inline_predictions": 0}
        self.sj_engine_active = self.max_num_active_reqs
        # Steps scheduled, not yet answered (async: the next is planned before the last returns).
        self.sj_inflight: deque[tuple[float, tuple[int, int, int] | None]] = deque(maxlen=8)
        self.sj_answered = 0.0  # when the last step's output came back
        self.sj_fit = StepCostFit()
        self.sj_evicting = False
        self.sj_clock = time.monotonic
        self.sj_snapshot_at = 0.0
        if len(self.waiting) or len(self.running):
            raise RuntimeError("skipjoin must replace the waiting queue before any request arrives")
        self.waiting = PolicyQueue()
        self.sj_snapshot = engine_stats(self)
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
            self.sj_table.add(request, self.sj_clock())

    def schedule(self, *args, **kwargs):
        now = self.sj_clock()
        before = self.sj_policy.config
        self.sj_policy = self.sj_pending.apply(self.sj_policy, self.sj_table.seqs.values(), now)
        self.sj_table.policy = self.sj_policy
        if self.sj_policy.config is not before:
            log.info("policy knobs now %s", self.sj_policy.config.to_dict())
        self.sj_table.sync_tokens(self.running, now)
        driver = VllmDriver(self)
        step(self.sj_policy, driver.view(now), driver)
        paused = driver.paused()
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            self.max_num_active_reqs = self.sj_engine_active
            self.running.extend(paused)  # still RUNNING for vLLM: aborts and stats find them
        self.sj_inflight.append((now, step_shape(out, self.requests)))
        return out

    def update_from_output(self, scheduler_output, model_runner_output):
        out = super().update_from_output(scheduler_output, model_runner_output)
        now = self.sj_clock()
        started, shape = self.sj_inflight.popleft() if self.sj_inflight else (now, None)
        if shape and self.sj.measure_costs:  # its own time: from its start or the last output on
            seqs, ctx, prefill = shape
            took = now - max(started, self.sj_answered)
            self.sj_policy.costs.observe_step(took)
            self.sj_fit.observe(took, seqs, ctx, prefill)
            self.sj_fit.apply(self.sj_policy.costs, seqs, ctx)
        self.sj_answered = now
        self.sj_counts["steps"] += 1
        self._sj_inline_predictions(now)
        if now - self.sj_snapshot_at >= STATS_EVERY_S or not self.sj_table.seqs:  # idle: no later step
            self.sj_snapshot, self.sj_snapshot_at = engine_stats(self), now
        return out

    def _preempt_request(self, request: Request, timestamp: float, drop_stale_output: bool = False) -> None:
        self.sj_counts["evicted_tokens"] += request.num_computed_tokens
        super()._preempt_request(request, timestamp, drop_stale_output)
        self.sj_paused.pop(request.request_id, None)
        seq = self.sj_table.get(request)
        if seq is not None and not self.sj_evicting:  # vLLM's own last resort (the step reports its own)
            self.sj_policy.on_preempted(seq, "recomputed", self.sj_clock())
        self.sj_counts["evictions"] += 1

    def _free_request(self, request: Request, delay_free_blocks: bool = False):
        self.sj_paused.pop(request.request_id, None)
        self.sj_table.finish(request.request_id, self.sj_clock())
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

    # --- live knobs and stats (control threads) ----------------------------------------------------
    def sj_config_changes(self, changes: dict) -> dict:
        """Validate and queue knob changes (ValueError on bad input); in force from the next plan."""
        return self.sj_pending.changes(self.sj_policy.config, changes).to_dict()

    def sj_current_config(self) -> dict:
        return self.sj_pending.current(self.sj_policy).to_dict()

    def shutdown(self) -> None:
        self.sj_control.stop()
        self.sj_inline.stop()
        super().shutdown()


class SkipJoinScheduler(SkipJoinMixin, Scheduler):
    """For vLLM's CPU build (the platform turns async scheduling off)."""


class SkipJoinAsyncScheduler(SkipJoinMixin, AsyncScheduler):
    """For vLLM's GPU build (async scheduling on)."""
