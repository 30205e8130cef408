"""A single slot: the runner is the only one that could free it, so its remaining work is the
natural wait a newcomer's pause must beat."""

from engine.policy import Capacity, Phase, PolicyConfig, SeqState, make_policy


def _two(long_left: int):
    policy = make_policy(PolicyConfig(name="mlfq", max_active=1))
    policy.costs.step_s = 0.08
    runner = SeqState("long", 0.0, 20, 400.0, 10 + long_left)
    policy.on_arrival(runner, 0.0)
    runner.phase = Phase.RUNNING
    policy.on_tokens(runner, 10, 1.0)
    short = SeqState("short", 1.0, 8, 50.0, 48)
    policy.on_arrival(short, 1.0)
    cap = Capacity(max_seqs=policy.config.active_cap(256), free_kv_tokens=60_000)
    return runner, short, policy.plan([runner], [short], cap, 1.1)


def test_a_long_runner_is_paused_for_a_short_newcomer():
    runner, short, plan = _two(long_left=110)
    assert plan.preempt == [runner] and plan.admit == [short] and plan.evict == []


def test_a_runner_about_to_finish_is_left_alone():
    _, _, plan = _two(long_left=20)
    assert plan.preempt == [] and plan.admit == []
