"""Live knobs from the Redis control plane reach the scheduler between passes; stats go out."""

import json
import time

import redis
import sgl_objects as sgl

from engine.policy import PolicyConfig
from engine.sglang import seqmap
from engine.sglang.control import REDIS_ENV, REPLICA_ENV, Control
from wire import control as keys


def wait_for(check, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


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
        assert wait_for(lambda: driver.pending is not None)
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


def test_bad_knobs_are_refused_and_the_running_config_kept(driver, redis_server):
    ctl = Control(driver, PolicyConfig(), redis_server.url, "sgl-test")
    try:
        ctl.on_knobs({"levels": 0}, 7)
    except ValueError as exc:
        assert "levels" in str(exc)
    assert driver.pending is None and driver.policy.config.levels == PolicyConfig().levels
