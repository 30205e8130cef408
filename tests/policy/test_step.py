"""`engine.policy.step`: one plan per call, carried out through the driver in the protocol's order."""

from engine.policy import CostEstimates, Phase, PolicyConfig, SeqState, make_policy
from engine.policy.step import View, should_plan, step


class Driver:
    def __init__(self, evict_mode=("recomputed", 7)):
        self.log, self.evict_mode = [], evict_mode

    def evict(self, seq):
        self.log.append(("evict", seq.rid))
        return self.evict_mode

    def pause(self, seq):
        self.log.append(("pause", seq.rid))

    def admit(self, seq):
        self.log.append(("admit", seq.rid))

    def order_running(self, best_first):
        self.log.append(("order", [s.rid for s in best_first]))


def runner(p, rid, at, generated):
    s = SeqState(rid, at, 16)
    p.on_arrival(s, at)
    s.phase = Phase.RUNNING
    p.on_tokens(s, generated, at + 1)
    return s


def test_one_before_plan_free_slots_and_the_victim_order_last():
    p = make_policy(PolicyConfig(max_active=3, candidate_window=1), costs=CostEstimates(step_s=0.05))
    calls, windows = [], []
    before, candidates = p.before_plan, p.candidates
    p.before_plan = lambda waiting, now: (calls.append(now), before(waiting, now))[1]
    p.candidates = lambda waiting, slots, now: (windows.append(slots), candidates(waiting, slots, now))[1]
    running = [runner(p, "a", 0.0, 100), runner(p, "b", 1.0, 5)]
    waiting = [SeqState(f"w{i}", 2.0 + i, 16, 4.0) for i in range(3)]
    for s in waiting:
        p.on_arrival(s, s.arrival)
    d = Driver()
    plan = step(p, View(running, waiting, 8, 100_000, 10.0), d)
    assert plan.admit and plan.preempt
    assert calls == [10.0] and windows == [1]  # the policy's cap is 3, two run: one slot free
    assert [e for e in d.log if e[0] != "order"] == [("pause", s.rid) for s in plan.preempt] + \
        [("admit", s.rid) for s in plan.admit]
    order = d.log[-1][1]
    batch = [s for s in running if s not in plan.preempt] + plan.admit
    assert order == [s.rid for s in p.victim_order(batch, 10.0)][::-1]
    assert all(s.phase is Phase.RUNNING for s in plan.admit)


def test_the_step_reports_each_eviction_as_the_driver_carried_it_out():
    p = make_policy(PolicyConfig(name="fcfs"))
    running = [runner(p, "a", 0.0, 600), runner(p, "b", 1.0, 600)]
    step(p, View(running, [], 8, -100, 10.0), Driver(("recomputed", 7)))  # KV short: someone goes
    gone = [s for s in running if s.phase is not Phase.RUNNING]
    assert len(gone) == 1 and gone[0].phase is Phase.WAITING and gone[0].cached_len == 7
    assert gone[0].preemptions == 1


def test_should_plan_when_keep_longest_can_stop_a_runner():
    fcfs = make_policy(PolicyConfig(name="fcfs", max_active=2))
    longest = make_policy(PolicyConfig(name="fcfs", max_active=2, keep_longest=True))
    assert not should_plan(fcfs, running=2, waiting=3, engine_slots=8, kv_short=False)
    assert should_plan(longest, running=2, waiting=3, engine_slots=8, kv_short=False)
    assert should_plan(fcfs, running=1, waiting=3, engine_slots=8, kv_short=False)
    assert should_plan(fcfs, running=3, waiting=0, engine_slots=8, kv_short=False)  # over the cap
    assert should_plan(fcfs, running=2, waiting=0, engine_slots=8, kv_short=True)
