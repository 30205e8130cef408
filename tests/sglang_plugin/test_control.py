"""Live knobs from the Redis control plane reach the scheduler between passes; stats go out."""

import json
import time

import redis
import sgl_objects as sgl
from sglang.srt.managers.scheduler_components.request_receiver import SchedulerRequestReceiver

from engine.policy import PolicyConfig
from engine.sglang import seqmap
from engine.sglang.control import REDIS_ENV, REPLICA_ENV, Control
from engine.sglang.driver import Driver
from wire import control as keys


def wait_for(check, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def broadcast(recv_reqs):
    """What `ingest_requests` runs each loop iteration: the leader's requests to every rank (one
    rank here, so SGLang's broadcast hands them back)."""
    return SchedulerRequestReceiver._broadcast_reqs_across_ranks(None, recv_reqs, [])


def test_knobs_applied_on_the_next_pass_and_stats_published(driver, redis_server):
    driver.configure(PolicyConfig(base_quantum=32))
    ctl = Control.from_env(driver, {REDIS_ENV: redis_server.url, REPLICA_ENV: "sgl-test"})
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    eng = sgl.Engine.build()
    waiting = [sgl.request("a", 16, priority=100)]
    driver.on_first_pass = ctl.start
    eng.schedule_policy().calc_priority(waiting)  # first pass: the threads start
    try:
        before = seqmap.seq_of(waiting[0]).level
        client.hset(keys.POLICY, mapping={"version": 1, "knobs": json.dumps({"base_quantum": 4})})
        assert wait_for(lambda: driver.proposed is not None)
        eng.schedule_policy().calc_priority(waiting)
        assert driver.policy.config.base_quantum == 32  # not before every rank has it
        assert broadcast([]) == []  # it rides the broadcast, and is taken out of it
        assert driver.proposed is None and driver.pending is not None
        assert driver.policy.config.base_quantum == 32  # not mid-pass: only at the next one
        eng.schedule_policy().calc_priority(waiting)
        assert driver.policy.config.base_quantum == 4 and driver.pending is None
        # A new level ladder re-enters live requests: 100 predicted tokens sit lower with quantum 4.
        size = 100 + 16 / 16  # predicted + prompt/16
        assert before == PolicyConfig(base_quantum=32).entry_level(size) == 2
        assert seqmap.seq_of(waiting[0]).level == PolicyConfig(base_quantum=4).entry_level(size) == 4
        assert waiting[0].priority == seqmap.seq_of(waiting[0]).level
        key = keys.engine_stats("sgl-test")
        assert wait_for(lambda: client.get(key) is not None)
        stats = json.loads(client.get(key))
        assert stats["backend"] == "sglang" and stats["policy"]["base_quantum"] == 4
        assert stats["passes"] >= 2
    finally:
        ctl.stop()
        client.close()


def test_knobs_reach_every_rank_at_the_same_pass(hooked, clock):
    """Only the leader (the rank that read the requests) sends its proposal; a follower's own
    proposal, from its own Redis watcher, is never used."""
    leader, follower = (Driver(PolicyConfig(), clock=clock, ranks=2) for _ in range(2))
    leader.request_config(PolicyConfig(max_active=3))
    follower.request_config(PolicyConfig(max_active=7))
    # SGLang's own function on the leader (one rank in this process: what it would send);
    # the follower receives that list (the network between them is the one stand-in).
    stock = SchedulerRequestReceiver._broadcast_reqs_across_ranks.__wrapped__
    sent = []
    got = leader.share_knobs(lambda *a: sent.extend(stock(*a)) or list(sent), None, ["r1"], [])
    assert follower.share_knobs(lambda *_: list(sent), None, None, None) == got == ["r1"]
    assert len(sent) == 2  # the request and the knobs
    assert leader.pending == follower.pending == PolicyConfig(max_active=3)
    assert leader.proposed is None and follower.proposed == PolicyConfig(max_active=7)


def test_bad_knobs_are_refused_and_the_running_config_kept(driver, redis_server):
    ctl = Control(driver, PolicyConfig(), redis_server.url, "sgl-test")
    try:
        ctl.on_knobs({"levels": 0}, 7)
    except ValueError as exc:
        assert "levels" in str(exc)
    assert driver.pending is None and driver.policy.config.levels == PolicyConfig().levels
