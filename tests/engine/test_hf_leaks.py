"""1,000 mixed requests with preemption, cancels and prefix hits leave every block free again."""

import random

from engine.hf import GenerationRequest
from engine.policy import PolicyConfig


def test_thousand_mixed_requests_leave_no_blocks_behind(make_runner, prompts):
    runner = make_runner(PolicyConfig(name="mlfq", max_swap_fraction=1.0, promote_after_s=None),
                         max_batch=16, num_blocks=40, block_size=16, host_pool_blocks=24)
    rng = random.Random(1)
    shared = prompts(4, 40, 60, seed=7)  # recurring system prompts: prefix hits
    rids = []
    for i in range(1000):
        body = prompts(1, 2, 30, seed=i)[0]
        ids = rng.choice(shared) + body if i % 2 else body
        req = GenerationRequest(input_ids=ids, max_new_tokens=rng.choice([0, 1, 4, 12, 24]),
                                ignore_eos=True, priority=rng.choice([None, 4, 200]))
        rids.append(runner.submit(req))
        if i % 7 == 0:
            runner.cancel(rids[rng.randrange(len(rids))])
    reasons = [list(runner.events(rid))[-1].finish_reason for rid in rids]
    runner.check_integrity()
    usage = runner.block_usage()
    stats = runner.stats()
    assert reasons.count("cancelled") > 50 and reasons.count("length") > 500
    assert set(reasons) <= {"cancelled", "length"}
    assert stats["preemptions"] > 0 and stats["prefix_hit_tokens"] > 0
    assert usage["device_used"] == 0 and usage["host_used"] == 0  # only cached prefixes remain
    assert runner.load() == {"running": 0, "waiting": 0, "swapped": 0, "max_batch": 16}
