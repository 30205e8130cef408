"""The pure policy on plain data: entry levels, demotion, promotion, victims, do-no-harm.

Where a test is about copy costs the engine cannot pause (`can_pause=False`): every stop evicts."""

import pytest

from engine.policy import (
    Capacity,
    CostEstimates,
    LengthStats,
    Phase,
    PolicyConfig,
    SeqState,
    make_policy,
)


def seq(rid, arrival=0.0, prompt=16, predicted=None, generated=0):
    return SeqState(rid=rid, arrival=arrival, prompt_len=prompt, predicted_len=predicted, generated=generated)


def running(policy, s, now=0.0):
    policy.on_arrival(s, now)
    s.phase = Phase.RUNNING
    return s


def test_config_validation_and_live_update():
    cfg = PolicyConfig()
    with pytest.raises(ValueError):
        PolicyConfig(levels=0)
    with pytest.raises(ValueError):
        PolicyConfig(name="lottery")
    with pytest.raises(ValueError):
        cfg.updated({"no_such_knob": 1})
    with pytest.raises(ValueError):
        cfg.updated({"preempt": "yes"})
    with pytest.raises(ValueError):
        cfg.updated({"max_swap_fraction": 2.0})
    new = cfg.updated({"base_quantum": 64, "promote_after_s": None})
    assert new.base_quantum == 64 and new.promote_after_s is None and cfg.base_quantum == 32


def test_skip_join_entry_levels():
    p = make_policy(PolicyConfig(levels=6, base_quantum=32, quantum_growth=2, prefill_weight=1 / 16))
    cases = {"short": (16, 10), "mid": (16, 300), "long": (16, 5000), "long_prompt": (4000, None),
             "blind": (16, None)}
    levels = {}
    for rid, (prompt, predicted) in cases.items():
        s = seq(rid, prompt=prompt, predicted=predicted)
        p.on_arrival(s, 0.0)
        levels[rid] = s.level
    # Upper bounds 32, 96, 224, 480, 992: predicted 300 → level 3; 5000 → last level.
    assert levels == {"short": 0, "mid": 3, "long": 5, "long_prompt": 3, "blind": 0}


def test_demotion_after_each_quantum():
    p = make_policy(PolicyConfig(levels=4, base_quantum=8, quantum_growth=2, prefill_weight=0))
    s = seq("a")
    p.on_arrival(s, 0.0)
    p.on_tokens(s, 7, 1.0)
    assert s.level == 0
    p.on_tokens(s, 1, 2.0)
    assert s.level == 1 and s.demoted_at == 2.0
    p.on_tokens(s, 16, 3.0)
    assert s.level == 2
    p.on_tokens(s, 1000, 4.0)
    assert s.level == 3  # the last level keeps it


def test_prediction_delays_demotion_until_it_is_outrun():
    p = make_policy(PolicyConfig(levels=6, base_quantum=32, prefill_weight=0))
    s = seq("a", predicted=300)
    p.on_arrival(s, 0.0)
    assert s.level == 3
    p.on_tokens(s, 300, 1.0)
    assert s.level == 3  # still within its predicted range (≤ 480)
    p.on_tokens(s, 200, 2.0)
    assert s.level == 4


def test_promotion_after_waiting():
    p = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None))
    s = seq("a", predicted=900)
    p.on_arrival(s, 0.0)
    assert s.level == 4
    p.plan([], [s], Capacity(max_seqs=0, free_kv_tokens=0), now=4.0)
    assert s.level == 4
    p.plan([], [s], Capacity(max_seqs=0, free_kv_tokens=0), now=5.5)
    assert s.level == 0 and s.promotions == 1


def test_fill_order_fcfs_vs_mlfq():
    for name, expected in (("fcfs", ["long1", "long2"]), ("mlfq", ["short", "long1"])):
        p = make_policy(PolicyConfig(name=name))
        waiting = [seq("long1", 0.0, predicted=900), seq("long2", 1.0, predicted=900),
                   seq("short", 2.0, predicted=5)]
        for s in waiting:
            p.on_arrival(s, s.arrival)
        plan = p.plan([], waiting, Capacity(max_seqs=2, free_kv_tokens=10_000), now=3.0)
        assert [s.rid for s in plan.admit] == expected and plan.preempt == []


def test_cached_prefix_first_within_a_level():
    p = make_policy(PolicyConfig())
    a, b = seq("a", 0.0), seq("b", 1.0)
    b.cached_len = 12
    for s in (a, b):
        p.on_arrival(s, s.arrival)
    plan = p.plan([], [a, b], Capacity(max_seqs=1, free_kv_tokens=1000), now=2.0)
    assert [s.rid for s in plan.admit] == ["b"]


def test_victim_choice_lowest_level_most_recently_demoted():
    p = make_policy(PolicyConfig())
    r = [running(p, seq(f"r{i}", float(i))) for i in range(4)]
    r[0].level, r[0].demoted_at = 3, 10.0
    r[1].level, r[1].demoted_at = 3, 20.0
    r[2].level, r[2].demoted_at = 1, 30.0
    order = [s.rid for s in p.victim_order(r, 40.0)]
    assert order == ["r1", "r0", "r2", "r3"]


def busy_engine(policy, n=4, generated=600, predicted=None):
    batch = []
    for i in range(n):
        s = running(policy, seq(f"long{i}", float(i), predicted=predicted))
        policy.on_tokens(s, generated, 10.0)
        batch.append(s)
    return batch


def heavy_tail_stats():
    stats = LengthStats()
    for _ in range(90):
        stats.observe(20)
    for _ in range(10):
        stats.observe(4000)
    return stats


def test_preempts_long_runners_for_a_short_newcomer_when_it_pays():
    p = make_policy(PolicyConfig(), costs=CostEstimates(step_s=0.05, swap_s_per_token=1e-5),
                    lengths=heavy_tail_stats())
    batch = busy_engine(p)
    short = seq("short", 11.0, predicted=8)
    p.on_arrival(short, 11.0)
    plan = p.plan(batch, [short], Capacity(max_seqs=4, free_kv_tokens=100_000), now=11.0)
    assert [s.rid for s in plan.admit] == ["short"]
    assert [s.rid for s in plan.preempt] == ["long3"]  # same level: the newest goes


def test_no_preemption_when_swap_costs_more_than_it_saves():
    p = make_policy(PolicyConfig(), costs=CostEstimates(step_s=0.05, swap_s_per_token=1.0),
                    lengths=heavy_tail_stats())
    batch = busy_engine(p)
    short = seq("short", 11.0, predicted=8)
    p.on_arrival(short, 11.0)
    plan = p.plan(batch, [short], Capacity(max_seqs=4, free_kv_tokens=100_000, can_pause=False), now=11.0)
    assert plan.preempt == plan.evict == plan.admit == []


def test_light_tail_without_prediction_degrades_to_fcfs():
    """Old runners of light-tailed traffic are nearly done: a size-blind newcomer must not evict them."""
    stats = LengthStats()
    for n in range(300):
        stats.observe(150 + (n % 100))  # lengths 150..249: light tail
    p = make_policy(PolicyConfig(), costs=CostEstimates(step_s=0.05, swap_s_per_token=1e-6), lengths=stats)
    batch = busy_engine(p, generated=140)
    newcomer = seq("new", 11.0)
    p.on_arrival(newcomer, 11.0)
    plan = p.plan(batch, [newcomer], Capacity(max_seqs=4, free_kv_tokens=100_000), now=11.0)
    assert plan.preempt == []


def test_swap_budget_bounds_the_preemption_rate():
    p = make_policy(PolicyConfig(max_swap_fraction=0.01),
                    costs=CostEstimates(step_s=0.05, swap_s_per_token=1e-4), lengths=heavy_tail_stats())
    preempted = 0
    for t in range(20):
        batch = busy_engine(p)
        short = seq(f"s{t}", 11.0 + t, predicted=8)
        p.on_arrival(short, 11.0 + t)
        cap = Capacity(4, 100_000, can_pause=False)
        preempted += len(p.plan(batch, [short], cap, now=11.0 + t * 0.01).evict)
    # Each swap costs ~0.06 s; the bucket holds 0.1 s and refills 0.01 s/s.
    assert 1 <= preempted <= 2


def test_fcfs_and_sjf_never_preempt_priority_does():
    for name, expect in (("fcfs", 0), ("sjf", 0), ("priority", 1), ("srpt", 1)):
        p = make_policy(PolicyConfig(name=name), lengths=heavy_tail_stats())
        batch = busy_engine(p, predicted=5000)
        short = seq("short", 11.0, predicted=8)
        p.on_arrival(short, 11.0)
        plan = p.plan(batch, [short], Capacity(max_seqs=4, free_kv_tokens=100_000), now=11.0)
        assert len(plan.preempt) == expect, name


def test_kv_capacity_limits_admission_and_backfill():
    p = make_policy(PolicyConfig(name="fcfs"))
    big, small = seq("big", 0.0, prompt=900), seq("small", 1.0, prompt=50)
    for s in (big, small):
        p.on_arrival(s, s.arrival)
    plan = p.plan([], [big, small], Capacity(max_seqs=8, free_kv_tokens=500), now=2.0)
    assert [s.rid for s in plan.admit] == ["small"]
    p2 = make_policy(PolicyConfig(name="fcfs", backfill=False))
    assert p2.plan([], [big, small], Capacity(max_seqs=8, free_kv_tokens=500), now=2.0).admit == []


def test_mean_residual_life_follows_the_tail():
    heavy = heavy_tail_stats()
    assert heavy.mean_residual(100) > heavy.mean_residual(0)  # survivors are the long ones
    light = LengthStats()
    for n in range(300):
        light.observe(150 + (n % 100))
    assert light.mean_residual(140) < light.mean_residual(0)


def test_promotion_clock_follows_the_engine_pace():
    """Aging is counted in engine steps, so it bounds starvation alike on a slow and a fast engine."""
    for step_s in (0.3, 0.01):
        p = make_policy(PolicyConfig(promote_after_steps=100), costs=CostEstimates(step_s=step_s))
        s = seq("a", predicted=900)
        p.on_arrival(s, 0.0)
        p.plan([], [s], Capacity(max_seqs=0, free_kv_tokens=0), now=99 * step_s)
        assert s.level == 4
        p.plan([], [s], Capacity(max_seqs=0, free_kv_tokens=0), now=101 * step_s)
        assert s.level == 0


def test_shortest_expected_first_within_a_level():
    p = make_policy(PolicyConfig(prefill_weight=0))
    a, b = seq("a", 0.0, predicted=400), seq("b", 1.0, predicted=250)  # both level 3
    for s in (a, b):
        p.on_arrival(s, s.arrival)
    assert a.level == b.level == 3
    plan = p.plan([], [a, b], Capacity(max_seqs=1, free_kv_tokens=10_000), now=2.0)
    assert [s.rid for s in plan.admit] == ["b"]


def test_a_synchronous_copy_is_charged_to_the_whole_batch():
    """The same preemption that pays with 4 runners does not with 64: the copy stalls them all."""
    decisions = []
    for n in (4, 64):
        p = make_policy(PolicyConfig(max_swap_fraction=1.0),
                        costs=CostEstimates(step_s=0.05, swap_s_per_token=2e-4), lengths=heavy_tail_stats())
        batch = busy_engine(p, n=n, predicted=700)  # ~100 tokens left each: a slot frees in ~5 s
        short = seq("short", 11.0, predicted=8)
        p.on_arrival(short, 11.0)
        decisions.append(len(p.plan(batch, [short], Capacity(n, 100_000, can_pause=False), now=11.0).evict))
    assert decisions == [1, 0]


def test_a_promoted_request_goes_first_until_it_runs():
    p = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None))
    old = seq("old", 0.0, predicted=900)
    p.on_arrival(old, 0.0)
    fresh = seq("fresh", 6.0, predicted=4)
    p.on_arrival(fresh, 6.0)
    plan = p.plan([], [old, fresh], Capacity(max_seqs=1, free_kv_tokens=10_000), now=6.0)
    assert old.level == fresh.level == 0 and [s.rid for s in plan.admit] == ["old"]
    p.on_tokens(old, 1, 7.0)
    assert not old.aged


def test_a_promoted_request_that_does_not_fit_holds_the_freed_kv():
    """Backfill would hand every freed block to the small requests behind it, and the starvation
    bound would mean nothing: past an aged request nothing is admitted, nor preempts for room."""
    p = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None))
    big, small = seq("big", 0.0, prompt=900, predicted=900), seq("small", 5.5, prompt=50, predicted=4)
    for s in (big, small):
        p.on_arrival(s, s.arrival)
    plan = p.plan([], [big, small], Capacity(max_seqs=8, free_kv_tokens=500), now=6.0)
    assert big.aged and plan.admit == [] and plan.preempt == plan.evict == []
    plan = p.plan([], [big, small], Capacity(max_seqs=8, free_kv_tokens=2_000), now=6.5)
    assert [s.rid for s in plan.admit] == ["big", "small"]


def finished(policy, lengths):
    for i, n in enumerate(lengths):
        s = seq(f"done{i}")
        policy.on_arrival(s, 0.0)
        s.generated = n
        policy.on_finish(s, 0.0)


def test_aging_grants_the_service_a_request_is_expected_to_be_spared():
    """Latency is wait + service: a request expected to be short may wait, beyond the base clock,
    the decode time of a long request (the 0.99 quantile of finished lengths) less its own."""
    p = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None),
                    costs=CostEstimates(step_s=0.01))
    finished(p, [100] * 90 + [1000] * 10)  # 0.99 quantile 1,000 tokens = 10 s at 0.01 s a step
    blind, long_ = seq("blind", 0.0, prompt=2000), seq("long", 0.0, prompt=2000, predicted=2000)
    for s in (blind, long_):
        p.on_arrival(s, 0.0)
    spared = (1000 - p.expected_remaining(blind)) * 0.01
    assert blind.level > 0 and 5.0 < spared < 10.0
    p.plan([], [blind, long_], Capacity(max_seqs=0, free_kv_tokens=0), now=5.5)
    assert long_.aged and not blind.aged  # expected to be long: the base clock alone
    p.plan([], [blind, long_], Capacity(max_seqs=0, free_kv_tokens=0), now=5.0 + spared - 0.1)
    assert not blind.aged
    p.plan([], [blind, long_], Capacity(max_seqs=0, free_kv_tokens=0), now=5.0 + spared + 0.1)
    assert blind.aged
    no_tail = make_policy(PolicyConfig(promote_after_s=5.0, promote_after_steps=None,
                                       aging_tail_quantile=None))
    finished(no_tail, [100] * 90 + [1000] * 10)
    other = seq("other", 0.0, prompt=2000)
    no_tail.on_arrival(other, 0.0)
    no_tail.plan([], [other], Capacity(max_seqs=0, free_kv_tokens=0), now=5.5)
    assert other.aged


def test_keep_longest_admits_the_longest_first_under_a_binding_cap():
    for keep, expected in ((False, ["s1", "s2"]), (True, ["long", "s1"])):
        p = make_policy(PolicyConfig(max_active=2, keep_longest=keep))
        waiting = [seq("s1", 0.0, predicted=5), seq("s2", 0.1, predicted=6), seq("long", 0.2, predicted=900)]
        for s in waiting:
            p.on_arrival(s, s.arrival)
        plan = p.plan([], waiting, Capacity(max_seqs=8, free_kv_tokens=100_000), now=1.0)
        assert [s.rid for s in plan.admit] == expected


def test_keep_longest_never_pauses_the_longest_for_the_slot_cap_and_lets_it_back_in():
    p = make_policy(PolicyConfig(max_active=2, keep_longest=True), lengths=heavy_tail_stats())
    long = running(p, seq("long", 0.0, predicted=900))
    mid = running(p, seq("mid", 0.0, predicted=40))
    for _ in range(6):  # long is demoted far below every newcomer
        p.on_tokens(long, 32, 1.0)
    short = seq("short", 2.0, predicted=3)
    p.on_arrival(short, 2.0)
    plan = p.plan([long, mid], [short], Capacity(max_seqs=8, free_kv_tokens=100_000), now=2.0)
    assert long not in plan.preempt
    # The longest waits (it was paused before keep_longest was on): it takes the worst runner's slot.
    p2 = make_policy(PolicyConfig(max_active=2, keep_longest=True))
    a, b = running(p2, seq("a", 0.0, predicted=4)), running(p2, seq("b", 0.1, predicted=5))
    big = seq("big", 0.2, predicted=800)
    p2.on_arrival(big, 0.2)
    plan = p2.plan([a, b], [big], Capacity(max_seqs=8, free_kv_tokens=100_000), now=1.0)
    assert [s.rid for s in plan.admit] == ["big"] and [s.rid for s in plan.preempt] == ["b"]


def test_keep_longest_has_no_effect_where_everyone_fits():
    p = make_policy(PolicyConfig(max_active=4, keep_longest=True))
    waiting = [seq("s1", 0.0, predicted=5), seq("long", 0.2, predicted=900)]
    for s in waiting:
        p.on_arrival(s, s.arrival)
    assert p.anchor_for([], waiting, 8) is None
    plan = p.plan([], waiting, Capacity(max_seqs=8, free_kv_tokens=100_000), now=1.0)
    assert [s.rid for s in plan.admit] == ["s1", "long"]


def test_the_step_prefill_budget_stops_admission_once_spent():
    p = make_policy(PolicyConfig(name="fcfs"))
    waiting = [seq(f"r{i}", float(i), prompt=100) for i in range(4)]
    for s in waiting:
        p.on_arrival(s, s.arrival)
    plan = p.plan([], waiting, Capacity(max_seqs=8, free_kv_tokens=100_000, prefill_tokens=150), now=5.0)
    assert [s.rid for s in plan.admit] == ["r0", "r1"]  # the second overruns: the engine chunks it
    plan = p.plan([], waiting, Capacity(max_seqs=8, free_kv_tokens=100_000), now=5.0)
    assert len(plan.admit) == 4
