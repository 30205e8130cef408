"""The engine's own prices: the online fit recovers a step-time law from the steps it sees."""

import random

import pytest

from engine.policy import CostEstimates
from engine.policy.costfit import StepCostFit

TRUE = dict(base_s=0.047, per_seq_s=0.0011, per_ctx_s=2.8e-6, prefill_s_per_token=6.8e-4)


def law(seqs, ctx, prefill):
    t = TRUE
    return t["base_s"] + t["per_seq_s"] * seqs + t["per_ctx_s"] * ctx + t["prefill_s_per_token"] * prefill


def test_the_fit_recovers_the_step_law_and_prices_the_policy():
    rng = random.Random(1)
    fit = StepCostFit()
    costs = CostEstimates()
    assert fit.prices()["fit"] is None
    for _ in range(600):
        seqs = rng.randint(1, 64)
        ctx = seqs * rng.randint(50, 1500)
        prefill = rng.choice([0, 0, 0, rng.randint(16, 2048)])
        fit.observe(law(seqs, ctx, prefill) * rng.uniform(0.97, 1.03), seqs, ctx, prefill)
    got = fit.prices()["fit"]
    for name, value in TRUE.items():
        assert got[name] == pytest.approx(value, rel=0.15), name
    fit.apply(costs, 16, 16 * 600)
    assert costs.step_s == pytest.approx(law(16, 16 * 600, 0), rel=0.05)
    assert costs.decode_s_per_token == pytest.approx(costs.step_s / 16)
    assert costs.prefill_s_per_token == pytest.approx(TRUE["prefill_s_per_token"], rel=0.15)


def test_a_change_of_speed_is_followed():
    """The box slows down by half: recent steps outweigh old ones."""
    fit = StepCostFit()
    for k in range(2):
        for i in range(800):
            seqs = 1 + i % 32
            fit.observe(law(seqs, seqs * 300, 0) * (1.5 if k else 1.0), seqs, seqs * 300, 64 * (i % 5 == 0))
    assert fit.step_s(16, 16 * 300) == pytest.approx(1.5 * law(16, 16 * 300, 0), rel=0.05)


def test_identical_steps_do_not_break_it():
    fit = StepCostFit()
    for _ in range(100):
        fit.observe(0.05, 4, 400, 0)
    assert fit.step_s(4, 400) == pytest.approx(0.05, rel=0.02)
