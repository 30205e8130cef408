"""Every knob changed live (`PendingConfig` → `reconfigured`, as the engines apply the control
plane's changes) shows in the very next plan: the same requests, the same capacity, decisions or
standings that differ from the unchanged policy's."""

from __future__ import annotations

import dataclasses
import random

import pytest

from engine.policy import CostEstimates, Phase, PolicyConfig, SeqState, make_policy
from engine.policy.live import PendingConfig
from engine.policy.step import View, step


class Recorder:
    """A driver that only writes down what it is told."""

    def __init__(self):
        self.log: list[tuple[str, str]] = []

    def evict(self, seq):
        self.log.append(("evict", seq.rid))
        return "swapped", 0

    def pause(self, seq):
        self.log.append(("pause", seq.rid))

    def admit(self, seq):
        self.log.append(("admit", seq.rid))

    def order_running(self, best_first):
        self.log.append(("order", ",".join(s.rid for s in best_first)))


def history(p, n=100):
    """Finished requests: heavy-tailed lengths (p99 4,000), predictions that rank them fairly (rho ~0.5)."""
    rng = random.Random(3)
    for i in range(n):
        actual = 4000 if i % 10 == 0 else 20
        s = SeqState(f"done{i}", 0.0, 16, float(3000 if actual > 20 else rng.randint(5, 4000)))
        p.on_arrival(s, 0.0)
        p.on_tokens(s, actual, 0.0)
        p.on_finish(s, 0.0)


def arrive(p, rid, at, prompt=16, predicted=None, generated=0, phase=Phase.WAITING, now=None):
    s = SeqState(rid, at, prompt, predicted)
    p.on_arrival(s, at)
    if generated:
        s.phase = Phase.RUNNING
        p.on_tokens(s, generated, at if now is None else now)
    s.phase = phase
    return s


# Worlds: (running, waiting, engine slots, free KV, can_pause, now), built on a policy with history.
def preemption(p):
    runners = [arrive(p, f"long{i}", float(i), generated=600, phase=Phase.RUNNING, now=10.0)
               for i in range(4)]
    return runners, [arrive(p, "short", 11.0, prompt=400, predicted=8)], 4, 100_000, True, 11.0


def preemption_by_eviction(p):
    return (*preemption(p)[:4], False, 11.0)


def near_done_runners(p):
    """Preempting would not pay: a runner finishes in two steps."""
    runners = [arrive(p, f"r{i}", float(i), predicted=700, generated=698, phase=Phase.RUNNING, now=10.0)
               for i in range(2)]
    return runners, [arrive(p, "short", 11.0, predicted=8)], 2, 100_000, True, 11.0


def admission(free_kv):
    def world(p):
        waiting = [arrive(p, "big", 0.0, prompt=900), arrive(p, "small", 1.0), arrive(p, "small2", 2.0)]
        return [], waiting, 1, free_kv, True, 5.0
    return world


def longest_waits(p):
    runners = [arrive(p, f"r{i}", 0.0, predicted=20, generated=10, phase=Phase.RUNNING, now=4.0)
               for i in range(2)]
    return runners, [arrive(p, "huge", 1.0, predicted=3000)], 8, 100_000, True, 5.0


def two_small(p):
    """Same level and prompt; the later one predicted shorter."""
    waiting = [arrive(p, "early", 0.0, predicted=30), arrive(p, "late", 1.0, predicted=10)]
    return [], waiting, 1, 100_000, True, 2.0


def two_prompts(p):
    """Same level and prediction; the earlier one with the longer prompt."""
    waiting = [arrive(p, "early", 0.0, prompt=160, predicted=20), arrive(p, "late", 1.0, predicted=20)]
    return [], waiting, 1, 100_000, True, 2.0


def aging(p):
    """An old long request is due for promotion at t=100 (80 s: 1,600 steps of 50 ms); a mid one
    is spared 50 s more by the aging tail; a fresh short one competes for the one slot."""
    waiting = [arrive(p, "old", 0.0, predicted=5000), arrive(p, "mid", 0.0, predicted=3000),
               arrive(p, "fresh", 100.0, predicted=4)]
    return [], waiting, 1, 100_000, True, 100.0


CASES = [  # knob, new value, world, base knobs
    ("name", "fcfs", preemption, {}),
    ("levels", 2, preemption, {}),
    ("base_quantum", 4096, preemption, {}),
    ("quantum_growth", 1.0, preemption, {}),
    ("prefill_weight", 1.0, preemption, {}),
    ("promote_after_steps", 4000.0, aging, {}),
    ("promote_after_s", 1.0, aging, {}),
    ("aging_tail_quantile", None, aging, {}),
    ("aged_first", False, aging, {}),
    ("preempt", False, preemption, {}),
    ("min_gain_s", 3600.0, preemption, {}),
    ("min_level_gap", 10, preemption, {}),
    ("max_swap_fraction", 0.0, preemption_by_eviction, {}),
    ("max_preempt_per_step", 0, preemption, {}),
    ("cost_guard", False, near_done_runners, {}),
    ("backfill", False, admission(500), {"name": "fcfs"}),
    ("max_active", 2, preemption, {}),
    ("keep_longest", True, longest_waits, {"name": "fcfs", "max_active": 2}),
    ("min_prediction_rho", 0.95, two_small, {}),
    ("kv_reserve_steps", 0, admission(20), {"name": "fcfs", "kv_reserve_steps": 16}),
    ("prompt_aware", False, two_prompts, {}),
    ("candidate_window", 0, admission(500), {"name": "fcfs"}),
]


def test_every_knob_has_a_case():
    assert {c[0] for c in CASES} == {f.name for f in dataclasses.fields(PolicyConfig)}


def next_plan(knobs: dict, world, change: dict | None):
    p = make_policy(PolicyConfig(**knobs), costs=CostEstimates(step_s=0.05, swap_s_per_token=1e-5))
    history(p)
    running, waiting, slots, free_kv, can_pause, now = world(p)
    if change:
        pending = PendingConfig()
        pending.changes(p.config, change)
        p = pending.apply(p, [*running, *waiting], now)
    driver = Recorder()
    step(p, View(running, waiting, slots, free_kv, now, can_pause=can_pause), driver)
    return driver.log, {s.rid: (s.level, s.aged) for s in (*running, *waiting)}


@pytest.mark.parametrize("knob, value, world, base", CASES, ids=[c[0] for c in CASES])
def test_a_live_change_shows_in_the_next_plan(knob, value, world, base):
    assert getattr(PolicyConfig(**base), knob) != value
    unchanged = next_plan(base, world, None)
    changed = next_plan(base, world, {knob: value})
    assert changed != unchanged, f"{knob}={value!r} changed nothing: {unchanged}"


def test_the_history_makes_predictions_trusted_but_not_beyond_doubt():
    p = make_policy(PolicyConfig())
    history(p)
    assert p.trust.trusted and 0.2 < p.trust.rho < 0.95
    assert p.tail.quantile(0.99) == 4000
