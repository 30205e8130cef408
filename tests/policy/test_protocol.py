"""The protocol every driver calls: pause vs evict, KV-shortage evictions, paused re-admission,
the active-set cap, preemption modes, and what a driver needs to skip ahead."""

import math

import pytest

from engine.policy import Capacity, CostEstimates, LengthStats, Phase, PolicyConfig, SeqState, make_policy


def seq(rid, arrival=0.0, prompt=16, predicted=None):
    return SeqState(rid=rid, arrival=arrival, prompt_len=prompt, predicted_len=predicted)


def heavy_tail():
    stats = LengthStats()
    for n in range(100):
        stats.observe(20 if n % 10 else 4000)
    return stats


def long_runners(p, n=4, generated=600, prompt=16):
    out = []
    for i in range(n):
        s = seq(f"long{i}", float(i), prompt=prompt)
        p.on_arrival(s, float(i))
        s.phase = Phase.RUNNING
        p.on_tokens(s, generated, 10.0)
        out.append(s)
    return out


def paused(p, s, now=10.0):
    p.on_arrival(s, s.arrival)
    s.phase = Phase.RUNNING
    p.on_tokens(s, 600, now)
    p.on_preempted(s, "paused", now)
    return s


def mlfq(**knobs):
    return make_policy(PolicyConfig(**knobs), costs=CostEstimates(step_s=0.05, swap_s_per_token=1e-5),
                       lengths=heavy_tail())


def newcomer(p, rid="short", now=11.0, prompt=16):
    s = seq(rid, now, prompt=prompt, predicted=8)
    p.on_arrival(s, now)
    return s


def test_slot_cap_pauses_the_victim_when_kv_fits():
    p = mlfq()
    batch = long_runners(p)
    short = newcomer(p)
    plan = p.plan(batch, [short], Capacity(max_seqs=4, free_kv_tokens=1000), now=11.0)
    assert [s.rid for s in plan.preempt] == ["long3"] and plan.evict == []
    assert plan.admit == [short]


def test_evicts_only_what_kv_needs():
    """The newcomer's prompt does not fit beside the batch: one victim is evicted, not only paused."""
    p = mlfq()
    batch = long_runners(p)
    short = newcomer(p, prompt=400)
    plan = p.plan(batch, [short], Capacity(max_seqs=4, free_kv_tokens=100), now=11.0)
    assert plan.admit == [short]
    assert [s.rid for s in plan.evict] == ["long3"] and plan.preempt == []


def test_paused_lower_priority_requests_are_evicted_before_runners():
    p = mlfq()
    batch = long_runners(p, n=3)
    idle = paused(p, seq("idle", 5.0, prompt=400))
    short = newcomer(p, prompt=300)
    plan = p.plan(batch, [idle, short], Capacity(max_seqs=3, free_kv_tokens=100), now=11.0)
    assert plan.admit == [short] and plan.evict == [idle]  # its KV makes the room
    assert [s.rid for s in plan.preempt] == ["long2"]  # the slot: a pause, no copy


def test_engine_without_pause_evicts():
    p = mlfq()
    batch = long_runners(p)
    short = newcomer(p)
    plan = p.plan(batch, [short], Capacity(max_seqs=4, free_kv_tokens=1000, can_pause=False), now=11.0)
    assert [s.rid for s in plan.evict] == ["long3"] and plan.preempt == []


@pytest.mark.parametrize("name", ["fcfs", "sjf", "mlfq", "srpt"])
def test_kv_shortage_evicts_paused_first_then_the_victim_order(name):
    p = make_policy(PolicyConfig(name=name), lengths=heavy_tail())
    batch = long_runners(p, n=4)
    idle = paused(p, seq("idle", 9.0, prompt=8))  # context 608: frees part of a 2,000-token deficit
    plan = p.plan(batch, [idle], Capacity(max_seqs=8, free_kv_tokens=-1996), now=11.0)
    assert plan.evict[0] is idle and plan.admit == [] and plan.preempt == []
    runners = [s for s in plan.evict if s is not idle]
    assert runners == p.victim_order(batch, 11.0)[:len(runners)]
    freed = sum(s.context_len + (s.phase is Phase.RUNNING) for s in plan.evict)
    assert freed - 2000 >= 0 > freed - plan.evict[-1].context_len - 1 - 2000  # no more than needed


def test_kv_shortage_takes_the_smallest_context_in_the_worst_band():
    p = mlfq()
    batch = long_runners(p, n=3, prompt=2000)
    small = long_runners(p, n=1, prompt=16)[0]
    for s in (*batch, small):
        s.level, s.demoted_at = 5, 10.0
    plan = p.plan([*batch, small], [], Capacity(max_seqs=8, free_kv_tokens=0), now=11.0)
    assert plan.evict == [small]


def test_paused_request_is_readmitted_with_growth_only():
    p = make_policy(PolicyConfig(name="fcfs", kv_reserve_steps=0))
    batch = long_runners(p, n=2)
    back = paused(p, seq("back", 0.5))
    cold = seq("cold", 0.1, prompt=back.context_len)  # earlier, same context, but nothing cached
    p.on_arrival(cold, 0.1)
    plan = p.plan(batch, [cold, back], Capacity(max_seqs=4, free_kv_tokens=3), now=11.0)
    assert plan.admit == [back] and plan.evict == plan.preempt == []


def test_max_active_caps_the_batch_and_pauses_the_excess():
    p = make_policy(PolicyConfig(name="fcfs", max_active=2))
    waiting = [newcomer(p, f"w{i}", float(i)) for i in range(4)]
    plan = p.plan([], waiting, Capacity(max_seqs=8, free_kv_tokens=10_000), now=5.0)
    assert [s.rid for s in plan.admit] == ["w0", "w1"]
    p2 = make_policy(PolicyConfig(name="fcfs", max_active=2))
    batch = long_runners(p2, n=3)
    plan = p2.plan(batch, [], Capacity(max_seqs=8, free_kv_tokens=10_000), now=11.0)
    assert [s.rid for s in plan.preempt] == ["long2"] and plan.evict == []
    assert PolicyConfig(max_active=4).active_cap(16) == 4 and PolicyConfig().active_cap(16) == 16
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            PolicyConfig().updated({"max_active": bad})


def test_preemption_modes():
    p = mlfq()
    for mode, phase in (("paused", Phase.PAUSED), ("swapped", Phase.SWAPPED), ("recomputed", Phase.WAITING)):
        s = newcomer(p)
        s.cached_len = 10
        p.on_preempted(s, mode, 12.0)
        assert s.phase is phase and s.preemptions == 1
        assert (s.cached_len == 0) == (phase is Phase.WAITING)
        assert (s.evicted_at == 12.0) == (phase is not Phase.PAUSED)
    for bad in ("dropped", True):  # the bool shim is gone
        with pytest.raises(ValueError):
            p.on_preempted(newcomer(p), bad, 12.0)


def test_next_event_time_is_the_promotion_deadline():
    p = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None))
    a, b = seq("a", 1.0, predicted=900), seq("b", 3.0, predicted=900)
    for s in (a, b):
        p.on_arrival(s, s.arrival)
    assert p.next_event_time([a, b], 3.0) == pytest.approx(6.0)
    assert make_policy(PolicyConfig(name="fcfs")).next_event_time([a, b], 3.0) == math.inf
    p.plan([], [a, b], Capacity(0, 0), now=6.5)
    assert a.level == 0 and b.level > 0 and p.next_event_time([a, b], 6.5) == pytest.approx(8.0)


def test_candidates_keep_every_paused_request_and_the_best_window():
    p = make_policy(PolicyConfig(candidate_window=2))
    queue = [newcomer(p, f"w{i}", float(i)) for i in range(10)]
    idle = paused(p, seq("idle", 0.0, predicted=5000))
    got = p.candidates([*queue, idle], slots=1, now=20.0)
    assert idle in got and len(got) == 4
    assert {s.rid for s in got} - {"idle"} == {"w0", "w1", "w2"}


def test_admission_keeps_kv_for_the_batch_growth():
    """Filling KV to the brim makes the next step evict someone: admission leaves room to grow."""
    p = make_policy(PolicyConfig(name="fcfs", kv_reserve_steps=16))
    batch = long_runners(p, n=3)
    cand = newcomer(p, prompt=100)
    just = Capacity(max_seqs=8, free_kv_tokens=3 + 101)  # the batch's next step, then the prompt
    assert p.plan(batch, [cand], just, now=11.0).admit == []
    roomy = Capacity(max_seqs=8, free_kv_tokens=3 + 101 + 4 * 16)
    assert p.plan(batch, [cand], roomy, now=11.0).admit == [cand]


def test_predictions_that_rank_nothing_are_ignored():
    import random

    rng = random.Random(0)
    for noise, trusted in ((False, True), (True, False)):
        p = make_policy(PolicyConfig(min_prediction_rho=0.2))
        for i in range(200):
            actual = rng.randint(1, 1000)
            s = seq(f"f{i}", predicted=rng.randint(1, 1000) if noise else actual * 1.2)
            p.on_arrival(s, 0.0)
            p.on_tokens(s, actual, 1.0)
            p.on_finish(s, 1.0)
        assert p.trust.trusted is trusted
        long = seq("long", 2.0, predicted=5000)
        p.on_arrival(long, 2.0)
        assert (long.level == 5) is trusted  # untrusted: entry by prompt alone, like no prediction


def test_a_request_evicted_for_a_better_one_is_not_readmitted_in_the_same_plan():
    p = make_policy(PolicyConfig(name="srpt", kv_reserve_steps=0))
    batch = long_runners(p, n=2)
    for s in batch:
        s.predicted_len = 5000.0
    idle = paused(p, seq("idle", 0.5, prompt=400, predicted=700))
    short = newcomer(p, prompt=600)
    plan = p.plan(batch, [idle, short], Capacity(max_seqs=2, free_kv_tokens=2), now=11.0)
    assert short in plan.admit and idle in plan.evict and idle not in plan.admit
    assert not set(plan.evict) & set(plan.admit) and not set(plan.preempt) & set(plan.admit)


def test_an_evicted_request_is_not_promoted_straight_back():
    """The promotion clock restarts when a request last ran, so KV-shortage victims do not jump
    the queue and refill the cache they were just evicted from."""
    p = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None))
    victim = long_runners(p, n=1)[0]  # ran until t=10
    plan = p.plan([victim], [], Capacity(max_seqs=4, free_kv_tokens=0), now=10.0)
    assert plan.evict == [victim]
    p.on_preempted(victim, "swapped", 10.0)
    assert p.next_event_time([victim], 10.0) == pytest.approx(15.0)
    p.plan([], [victim], Capacity(max_seqs=4, free_kv_tokens=0), now=14.0)
    assert victim.level > 0 and not victim.aged


def test_aged_first_is_a_dial():
    for aged_first, first in ((True, "old"), (False, "fresh")):
        p = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None, aged_first=aged_first))
        old = seq("old", 0.0, predicted=900)
        p.on_arrival(old, 0.0)
        fresh = seq("fresh", 6.0, predicted=4)
        p.on_arrival(fresh, 6.0)
        plan = p.plan([], [old, fresh], Capacity(max_seqs=1, free_kv_tokens=10_000), now=6.0)
        assert old.level == 0 and [s.rid for s in plan.admit] == [first]
