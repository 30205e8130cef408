"""The one plan-and-apply step every driver calls: the driver's view in, actions out.

A driver (the vLLM adapter, the SGLang plugin, the simulator) decides nothing. Once per scheduling
pass it builds a `View` of its requests and calls `step(policy, view, driver)`; the step runs
the policy's plan and hands every decision back through the `Driver` protocol, in this order:

    driver.evict(seq) -> (mode, cached)   # KV freed: "swapped" (host tier) or "recomputed"
    driver.pause(seq)                     # out of the batch, KV kept on the device
    driver.admit(seq)                     # into the batch, in the plan's order
    driver.order_running(best_first)      # the batch after the step, the policy's first victim last

The step reports each stop to the policy (`on_preempted`); the driver reports only what the engine
did by itself (its own last-resort preemption, a finish, tokens). Slots: `View.engine_slots` is the
engine's whole batch size; the policy caps it (`max_active`) and `candidates` is given the slots
still free under that cap. `View.waiting` holds waiting, paused and swapped requests: all of them,
or, for a static-key policy kept in a heap, paused ones plus at least `window(free slots)` of the
rest in key order.

A driver may call `step` at every pass (a plan where nothing can change decides nothing). One
that skips passes (the simulator, between events) must call it whenever `should_plan` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from engine.policy.plan import Capacity, Plan
from engine.policy.seq import Phase, SeqState

if TYPE_CHECKING:
    from engine.policy.base import Policy


class Driver(Protocol):
    def evict(self, seq: SeqState) -> tuple[str, int]:
        """Free a running or paused request's KV; return how ("swapped" or "recomputed") and the
        prompt tokens still cached on the device afterwards (the prefix a recompute skips)."""

    def pause(self, seq: SeqState) -> None:
        """Take a running request out of the batch, keeping its KV (its slot is freed)."""

    def admit(self, seq: SeqState) -> None:
        """Put a waiting, paused or swapped request into the batch."""

    def order_running(self, best_first: list[SeqState]) -> None:
        """The batch in the policy's order: where the engine must stop someone by itself (KV run
        out inside its step), it takes the last of this list."""


@dataclass
class View:
    running: list[SeqState]  # the active batch
    waiting: list[SeqState]  # waiting, paused and swapped requests (see the module's note)
    engine_slots: int  # the engine's batch size, before the policy's `max_active`
    free_kv_tokens: int  # free device KV now (paused requests' KV is not free)
    now: float
    growth_per_seq: int = 1
    can_pause: bool = True
    prefill_tokens: int | None = None  # the step's prefill budget (None: the engine enforces its own)


def may_stop_runners(policy: Policy) -> bool:
    """Can a plan take a runner out of the batch for a waiting request? (Beyond the slot cap and KV
    shortage, which every policy enforces.)"""
    cfg = policy.config
    return (policy.preemptive and cfg.preempt) or (cfg.keep_longest and cfg.max_active is not None)


def should_plan(policy: Policy, running: int, waiting: int, engine_slots: int, kv_short: bool) -> bool:
    """Can a plan change anything now: KV short for the next step, the batch over its cap, or
    requests waiting while a slot is free or a runner may be stopped for them."""
    cap = policy.config.active_cap(engine_slots)
    return kv_short or running > cap or (waiting > 0 and (running < cap or may_stop_runners(policy)))


def step(policy: Policy, view: View, driver: Driver) -> Plan:
    """Plan once and carry the plan out through `driver`."""
    now = view.now
    policy.before_plan(view.waiting, now)  # once per plan: promotion by waiting
    cap = Capacity(max_seqs=policy.config.active_cap(view.engine_slots), free_kv_tokens=view.free_kv_tokens,
                   growth_per_seq=view.growth_per_seq, can_pause=view.can_pause,
                   prefill_tokens=view.prefill_tokens)
    candidates = policy.candidates(view.waiting, cap.max_seqs - len(view.running), now)
    plan = policy.decide(view.running, candidates, cap, now)
    for seq in plan.evict:
        mode, cached = driver.evict(seq)
        policy.on_preempted(seq, mode, now)
        if mode == "recomputed":
            seq.cached_len = cached
    for seq in plan.preempt:
        driver.pause(seq)
        policy.on_preempted(seq, "paused", now)
    for seq in plan.admit:
        driver.admit(seq)
        seq.phase = Phase.RUNNING
    stopped = {id(s) for s in (*plan.evict, *plan.preempt)}
    batch = [s for s in view.running if id(s) not in stopped] + plan.admit
    driver.order_running(policy.victim_order(batch, now)[::-1])
    return plan
