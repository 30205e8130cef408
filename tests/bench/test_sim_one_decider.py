"""The simulator decides nothing: every pause and eviction it carries out is one the policy's
`plan` chose, also when KV runs short; and an active-set cap is the policy's."""

from bench.costmodel import H100_7B
from bench.sim_engine import EngineSim, Job
from bench.workloads import generate
from engine.policy import PolicyConfig, SeqState, make_policy


def run(config: PolicyConfig, cost, n=120):
    policy = make_policy(config, costs=cost.estimates())
    decided, carried = [], []
    decide, on_preempted = policy.decide, policy.on_preempted

    def recording_plan(*args):
        p = decide(*args)
        decided.extend((s.rid, "paused") for s in p.preempt)
        decided.extend((s.rid, "swapped") for s in p.evict)
        return p

    def recording_preempted(seq, mode, now):
        carried.append((seq.rid, mode))
        on_preempted(seq, mode, now)

    policy.decide, policy.on_preempted = recording_plan, recording_preempted
    sim = EngineSim(policy, cost)
    w = generate("sharegpt-heavy", n, rate=1e9, seed=4)  # everything at once: the KV fills
    for i in range(n):
        seq = SeqState(str(i), 0.0, int(w.prompt_len[i]), float(w.output_len[i]))
        sim.submit(Job(seq, i, int(w.output_len[i])), 0.0)
    sim.schedule()
    done = []
    while sim.block is not None:
        done += sim.advance()
        assert len(sim.running) <= sim.slot_cap
    assert len(done) + sim.stats.rejected == n  # rejected: a prompt larger than the whole KV
    return sim, decided, carried


def test_every_stop_is_the_policys_choice_also_on_kv_shortage():
    cost = H100_7B.updated({"max_batch": 32, "kv_tokens": 5_000})
    for name in ("fcfs", "mlfq"):
        sim, decided, carried = run(PolicyConfig(name=name, kv_reserve_steps=0), cost)
        assert sim.stats.kv_preemptions > 0  # KV did run short
        assert carried == decided


def test_the_active_cap_is_applied_by_the_policy():
    cost = H100_7B.updated({"max_batch": 32, "kv_tokens": 200_000})
    sim, _, _ = run(PolicyConfig(name="fcfs", max_active=8), cost, n=60)
    assert sim.slot_cap == 8
