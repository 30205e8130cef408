"""The vLLM adapter over vLLM's own scheduler classes (no model runner, no engine start): where
the prediction comes from, a live knob in the next step, the prices the engine measures itself."""

from __future__ import annotations

import pytest

from tests.contract.scenario import Arrival

pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def build():
    from tests.contract.vllm_sched import build_scheduler, contract_env

    with contract_env():
        yield build_scheduler


def run_step(sched):
    from tests.contract.test_contract import one_token_each

    out = sched.schedule()
    sched.update_from_output(out, one_token_each(sched, out))
    return set(out.num_scheduled_tokens)


def test_the_prediction_has_its_own_field(build):
    from tests.contract.test_contract import request

    sched = build(4)
    try:
        new = request(Arrival(0, "new", 16, 8, 300.0), 0.0, 1000)
        new.priority = 5  # a client's priority beside the gateway's prediction: not the prediction
        old = request(Arrival(0, "old", 16, 8), 0.0, 2000)
        old.priority = 40  # an old gateway: the prediction in `priority`
        for r in (new, old):
            sched.add_request(r)
        seqs = sched.sj_table.seqs
        assert seqs["new"].predicted_len == 300.0 and seqs["old"].predicted_len == 40.0
        run_step(sched)
        assert {new.priority, old.priority} == {0, 1}  # now the rank of `running`
        del seqs["old"]  # met again later (not at arrival): its priority is a rank, not a prediction
        run_step(sched)
        assert seqs["old"].predicted_len is None and seqs["new"].predicted_len == 300.0
    finally:
        sched.shutdown()


def test_a_live_knob_applies_at_the_next_step(build):
    from tests.contract.test_contract import request

    sched = build(8)
    try:
        for i in range(4):
            sched.add_request(request(Arrival(0, f"r{i}", 16, 50, 50.0), 0.0, 1000 + 100 * i))
        assert len(run_step(sched)) == 4
        assert sched.sj_config_changes({"max_active": 2})["max_active"] == 2
        assert sched.sj_current_config()["max_active"] == 2
        assert len(run_step(sched)) == 2 and sched.sj_policy.config.max_active == 2
        assert sched.sj_counts["pauses"] == 2
        sched.sj_config_changes({"max_swap_fraction": 0.5, "min_prediction_rho": 0.9})
        run_step(sched)
        assert sched.sj_policy.budget.fraction == 0.5 and sched.sj_policy.trust.min_rho == 0.9
    finally:
        sched.shutdown()


def test_the_engine_prices_its_own_steps(build):
    """Steps that take 40 ms plus 2 ms per request and 1 ms per prompt token: /stats shows that law
    and the policy plans with it."""
    from engine.vllm.driver import engine_stats
    from tests.contract.test_contract import one_token_each, request
    from tests.contract.vllm_sched import contract_env

    with contract_env(SKIPJOIN_ENGINE_MEASURE_COSTS="true"):
        sched = build(16)
    clock = [0.0]
    sched.sj_clock = lambda: clock[0]
    try:
        n = 0
        for i in range(300):
            if i % 3 == 0 and len(sched.requests) < 12:
                sched.add_request(request(Arrival(0, f"r{n}", 16 + 8 * (n % 5), 20 + 7 * (n % 4)), clock[0],
                                          1000 + 64 * n))
                n += 1
            out = sched.schedule()
            seqs, _, prefill = sched.sj_inflight[-1][1]
            clock[0] += 0.040 + 0.002 * seqs + 0.001 * prefill
            sched.update_from_output(out, one_token_each(sched, out))
        prices = engine_stats(sched)["prices"]
        fit = prices["fit"]
        assert fit["base_s"] == pytest.approx(0.040, rel=0.1)
        assert fit["per_seq_s"] == pytest.approx(0.002, rel=0.1)
        assert fit["prefill_s_per_token"] == pytest.approx(0.001, rel=0.1)
        assert sched.sj_policy.costs.prefill_s_per_token == pytest.approx(0.001, rel=0.1)
        assert prices["steps"] >= 290
    finally:
        sched.shutdown()
