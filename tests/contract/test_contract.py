"""The drivers' contract (`scenario.py`): the vLLM adapter, over vLLM's own scheduler classes (its
block pool, queues, admission and last resort; a model runner that computes one token per
scheduled request), makes the simulator's decisions step by step."""

from __future__ import annotations

import pytest

from tests.contract.scenario import SCENARIOS, Arrival, Scenario, policy_for, sim_trace, trimmed
from wire import xargs


@pytest.fixture(scope="module")
def vllm_parts():
    pytest.importorskip("vllm")
    from tests.contract.vllm_sched import build_scheduler, contract_env

    with contract_env():
        yield build_scheduler


def request(a: Arrival, now: float, first_token: int):
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    extra = {xargs.PREDICTED: a.predicted} if a.predicted is not None else None
    params = SamplingParams(max_tokens=a.output, ignore_eos=True, extra_args=extra)
    tokens = list(range(first_token, first_token + a.prompt))  # no two prompts share a block
    return Request(a.rid, tokens, params, None, arrival_time=now)


def one_token_each(sched, out):
    """The model runner's answer: a token for each scheduled request whose prompt is done."""
    from vllm.v1.outputs import ModelRunnerOutput

    ids = list(out.num_scheduled_tokens)
    sampled = [[7] if sched.requests[r].num_computed_tokens >= sched.requests[r].num_prompt_tokens else []
               for r in ids]
    return ModelRunnerOutput(req_ids=ids, req_id_to_index={r: k for k, r in enumerate(ids)},
                             sampled_token_ids=sampled)


def vllm_trace(build, scenario: Scenario) -> list[tuple[str, ...]]:
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
                sched.add_request(request(pending.pop(0), clock[0], 1000 + 100 * len(sched.sj_table.seqs)))
            out = sched.schedule()
            _last_resort_is_the_policys_first_victim(sched)
            ids = list(out.num_scheduled_tokens)
            sched.update_from_output(out, one_token_each(sched, out))
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
