"""Preempted requests resume exactly: swapped through the host pool, or recomputed when it is full."""

import pytest

from engine.hf import GenerationRequest
from engine.policy import PolicyConfig

AGGRESSIVE = PolicyConfig(name="mlfq", max_swap_fraction=1.0, promote_after_s=None, max_preempt_per_step=8)


def requests(prompts):
    # A third of them predicted short: they preempt the long ones for priority, on top of starvation.
    return [GenerationRequest(input_ids=p, max_new_tokens=60, ignore_eos=True,
                              priority=8 if i % 3 == 0 else 600)
            for i, p in enumerate(prompts(12))]


@pytest.fixture(scope="module")
def alone(prompts):
    from engine.hf import EngineConfig, EngineRunner

    runner = EngineRunner(EngineConfig(model="tiny", max_batch=8, num_blocks=512, block_size=16))
    runner.start()
    try:
        return [runner.generate([r])[0] for r in requests(prompts)]
    finally:
        runner.stop()


def test_swap_resume_is_exact(make_runner, alone, prompts):
    runner = make_runner(AGGRESSIVE, max_batch=8, num_blocks=20, block_size=16)
    assert runner.generate(requests(prompts)) == alone
    stats = runner.stats()
    assert stats["preemptions"] >= 8 and stats["swap_outs"] >= 8 and stats["swap_ins"] == stats["swap_outs"]
    assert stats["swap_out_bytes"] == stats["swap_in_bytes"] > 0
    assert stats["recomputes"] == 0
    runner.check_integrity()
    assert runner.block_usage()["host_used"] == 0


def test_recompute_when_host_pool_is_full_is_exact(make_runner, alone, prompts):
    runner = make_runner(AGGRESSIVE, max_batch=8, num_blocks=20, block_size=16, host_pool_blocks=0)
    assert runner.generate(requests(prompts)) == alone
    stats = runner.stats()
    assert stats["recomputes"] >= 8 and stats["swap_outs"] == 0
    runner.check_integrity()


def test_small_host_pool_mixes_swap_and_recompute(make_runner, alone, prompts):
    runner = make_runner(AGGRESSIVE, max_batch=8, num_blocks=20, block_size=16, host_pool_blocks=6)
    assert runner.generate(requests(prompts)) == alone
    stats = runner.stats()
    assert stats["swap_outs"] > 0 and stats["recomputes"] > 0
    runner.check_integrity()
