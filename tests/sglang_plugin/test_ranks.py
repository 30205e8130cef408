"""Tensor-parallel ranks each run the plugin on the same requests and must build the same batch
(else the collective ops hang). Two ranks here, each with its own engine, driver and a wall clock
that runs at its own pace: the same plans, pass after pass, through preemptions, promotions and a
knob change the leader reads from Redis halfway through."""

import itertools

import pytest
import sgl_objects as sgl
from sglang.srt.managers.scheduler_components.request_receiver import SchedulerRequestReceiver

from engine.policy import PolicyConfig
from engine.sglang import seqmap
from engine.sglang.driver import Driver
from engine.sglang.plugin import install

pytestmark = pytest.mark.usefixtures("hooked")  # SGLang patched, as in every scheduler process

KNOBS = PolicyConfig(base_quantum=4, levels=6, prefill_weight=0.0, promote_after_steps=12)


def wall_clock(start: float, pace: float, jitter: float):
    """A monotonic clock whose every read moves it on by `pace` seconds, give or take `jitter`."""
    t, wobble = start, itertools.cycle([jitter, -jitter, 0.0])

    def read() -> float:
        nonlocal t
        t += pace + next(wobble)
        return t

    return read


class Rank:
    def __init__(self, clock, ranks: int, overlap: bool):
        self.driver = Driver(KNOBS, clock=clock, ranks=ranks)
        self.loop = sgl.Loop(sgl.Engine.build(kv_tokens=200), self.driver, overlap=overlap)

    def step(self, arrivals) -> None:
        install(self.driver)  # this rank's process: its hooks call its driver
        self.loop.waiting += arrivals
        self.loop.step()


def requests(t: int):
    if t == 0:
        return [sgl.request(f"long{i}", 30, max_new=40, priority=300, first_token=1 + 100 * i)
                for i in range(3)]
    if t in (4, 9):
        return [sgl.request(f"short{t}-{i}", 30, max_new=6, priority=2, first_token=1000 * t + 100 * i)
                for i in range(2)]
    return []


def run(ranks: int, overlap: bool = False, steps: int = 90):
    leader = Rank(wall_clock(1000.0, 0.004, 0.0), ranks, overlap)
    follower = Rank(wall_clock(52.0, 0.031, 0.017), ranks, overlap)
    stock = SchedulerRequestReceiver._broadcast_reqs_across_ranks.__wrapped__
    trace = {id(leader): [], id(follower): []}
    for t in range(steps):
        if t == 30:  # the control plane's threads on each rank; only the leader's proposal counts
            leader.driver.request_config(KNOBS.updated({"base_quantum": 8, "max_active": 3}))
            follower.driver.request_config(KNOBS.updated({"base_quantum": 2}))
        # `ingest_requests`: the leader broadcasts what it read; every rank takes the same list.
        sent: list = []
        leader.driver.share_knobs(lambda *a, out=sent: out.extend(stock(*a)) or list(out), None, [], [])
        follower.driver.share_knobs(lambda *_, out=sent: list(out), None, None, None)
        for rank in (leader, follower):
            rank.step(requests(t))
            reqs = rank.loop.waiting + rank.loop.running.reqs
            trace[id(rank)].append((rank.loop.log[-1], sorted((r.rid, seqmap.seq_of(r).level) for r in reqs)))
    for rank in (leader, follower):
        install(rank.driver)
        rank.loop.drain()
    return leader, follower, trace[id(leader)], trace[id(follower)]


def test_two_ranks_with_skewed_clocks_build_the_same_batches():
    leader, follower, lead, follow = run(ranks=2)
    assert lead == follow
    # The run decided things: preemptions, promotions, the knobs, everyone finished.
    assert leader.driver.stats["preempted"] > 0 and leader.driver.policy.promotions > 0
    assert leader.driver.policy.config.max_active == follower.driver.policy.config.max_active == 3
    assert len(leader.loop.done) == len(follower.loop.done) == 7
    assert [r.rid for r in leader.loop.done] == [r.rid for r in follower.loop.done]
    assert leader.driver.now == follower.driver.now  # the policy's clock counts steps


def test_two_ranks_agree_in_the_overlap_loop():
    leader, follower, lead, follow = run(ranks=2, overlap=True)
    assert lead == follow and leader.driver.stats["preempted"] > 0


def test_one_rank_learns_its_step_time_from_the_wall_clock():
    """Alone, a rank measures its steps (nothing to agree with): the two clocks above teach two
    step times — which is why ranks that share a batch do not measure."""
    leader, follower, _, _ = run(ranks=1, steps=40)
    assert leader.driver.policy.costs.step_s < follower.driver.policy.costs.step_s
