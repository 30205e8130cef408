"""The drivers' contract (`scenario.py`): the vLLM adapter, over vLLM's own scheduler classes (its
block pool, queues, admission and last resort; a model runner that computes one token per
scheduled request), makes the simulator's decisions step by step."""

from __future__ import annotations

import os

import pytest

from tests.contract.scenario import SCENARIOS, Arrival, Scenario, policy_for, sim_trace, trimmed
from wire import xargs

BLOCK, BLOCKS = 16, 1024  # 16k KV tokens: ample for every scenario


@pytest.fixture(scope="module")
def vllm_parts():
    """vLLM's config for a scheduler without a model runner (the real engine's folder gives the
    model's config; no weights are loaded)."""
    torch = pytest.importorskip("torch")
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig

    from engine.model_folder import smollm2_folder

    def build(slots: int):
        from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
        from vllm.v1.structured_output import StructuredOutputManager

        from engine.vllm.scheduler import SkipJoinScheduler

        model = ModelConfig(model=str(smollm2_folder()), dtype="float32", seed=0, max_model_len=2048)
        sched = SchedulerConfig(max_num_seqs=slots, max_num_batched_tokens=2048, max_model_len=2048,
                                is_encoder_decoder=False, enable_chunked_prefill=True, policy="priority")
        cache = CacheConfig(block_size=BLOCK, cache_dtype="auto", enable_prefix_caching=False)
        cache.num_gpu_blocks = BLOCKS
        config = VllmConfig(model_config=model, scheduler_config=sched, cache_config=cache)
        spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=torch.float32)
        kv = KVCacheConfig(num_blocks=BLOCKS, kv_cache_tensors=[],
                           kv_cache_groups=[KVCacheGroupSpec(["layer"], spec)])
        return SkipJoinScheduler(vllm_config=config, kv_cache_config=kv, block_size=BLOCK,
                                 structured_output_manager=StructuredOutputManager(config))

    env = {"SKIPJOIN_ENGINE_MEASURE_COSTS": "false", "SKIPJOIN_ENGINE_CONTROL_PORT": "0"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield build
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _request(a: Arrival, now: float, first_token: int):
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    extra = {xargs.PREDICTED: a.predicted} if a.predicted is not None else None
    params = SamplingParams(max_tokens=a.output, ignore_eos=True, extra_args=extra)
    tokens = list(range(first_token, first_token + a.prompt))  # no two prompts share a block
    return Request(a.rid, tokens, params, None, arrival_time=now)


def vllm_trace(build, scenario: Scenario) -> list[tuple[str, ...]]:
    from vllm.v1.outputs import ModelRunnerOutput

    sched = build(scenario.slots)
    clock = [0.0]
    sched.sj_clock = lambda: clock[0]
    sched.sj_policy = sched.sj_table.policy = policy_for(scenario)
    pending = sorted(scenario.arrivals, key=lambda a: a.step)
    steps: list[tuple[str, ...]] = []
    try:
        for i in range(400):
            clock[0] = float(i)
            while pending and pending[0].step <= i:
                sched.add_request(_request(pending.pop(0), clock[0], 1000 + 100 * len(sched.sj_table.seqs)))
            out = sched.schedule()
            _last_resort_is_the_policys_first_victim(sched)
            ids = list(out.num_scheduled_tokens)
            sampled = [[7] if sched.requests[r].num_computed_tokens >= sched.requests[r].num_prompt_tokens
                       else [] for r in ids]
            result = ModelRunnerOutput(req_ids=ids, req_id_to_index={r: k for k, r in enumerate(ids)},
                                       sampled_token_ids=sampled)
            sched.update_from_output(out, result)
            steps.append(tuple(sorted(ids)))
            if not pending and not sched.requests:
                return trimmed(steps)
    finally:
        sched.shutdown()
    raise AssertionError(f"{scenario.name}: not done after 400 steps")


def _last_resort_is_the_policys_first_victim(sched) -> None:
    """Where vLLM must stop a runner by itself (KV out inside its step) it takes the largest
    (priority, arrival): that must be the policy's first victim."""
    active = [r for r in sched.running if r.request_id not in sched.sj_paused]
    if len(active) > 1:
        seqs = [sched.sj_table.seqs[r.request_id] for r in active]
        worst = sched.sj_policy.victim_order(seqs, 0.0)[0]
        assert max(active, key=lambda r: (r.priority, r.arrival_time)).request_id == worst.rid


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_vllm_adapter_decides_as_the_simulator(vllm_parts, scenario):
    sim = sim_trace(scenario)
    assert any(len(set(a) - set(b)) for a, b in zip(sim, sim[1:], strict=False))  # something is decided
    live = vllm_trace(vllm_parts, scenario)
    first = next((i for i, (a, b) in enumerate(zip(live, sim, strict=False)) if a != b), None)
    assert live == sim, f"step {first}: vLLM ran {live[first:first + 3]}, the sim {sim[first:first + 3]}"
