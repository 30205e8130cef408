"""Simulator sanity: known orderings and a closed form, on the real policy code."""

import numpy as np

from bench.costmodel import CPU_SMOLLM2, H100_7B
from bench.sim_cluster import simulate
from bench.sim_predict import with_predictions
from bench.sim_runs import ARMS, build_workload, run_arm
from bench.workloads import all_at_once, generate, make_workload
from engine.policy import PolicyConfig


def test_sjf_equals_srpt_when_all_arrive_at_once_with_exact_predictions():
    w = with_predictions(all_at_once(generate("sharegpt", 300, seed=1)), 1.0)
    cost = CPU_SMOLLM2.updated({"max_batch": 8})
    sjf = simulate(w, PolicyConfig(name="sjf"), cost)
    srpt = simulate(w, PolicyConfig(name="srpt"), cost)
    np.testing.assert_allclose(sjf.done, srpt.done)
    assert srpt.engines[0].preemptions == 0


def test_oracle_srpt_mean_is_the_lowest():
    cost = H100_7B.updated({"max_batch": 16})
    w = build_workload("sharegpt-heavy", 600, 0.9, cost, seed=2)
    means = {name: run_arm(w, ARMS[name], cost, 0.55)[1].mean
             for name in ("fcfs", "sjf", "mlfq-blind", "skipjoin", "srpt")}
    assert means["srpt"] <= min(means.values())
    assert means["srpt"] < means["fcfs"]


def test_fcfs_single_server_matches_pollaczek_khinchine():
    rng = np.random.default_rng(5)
    n, step, rho = 60_000, 0.01, 0.6
    out = np.maximum(np.rint(rng.lognormal(np.log(100) - 0.2, 0.63, n)), 1).astype(int)
    service = out * step
    lam = rho / service.mean()
    w = make_workload(np.cumsum(rng.exponential(1 / lam, n)), np.full(n, 10), out)
    cost = CPU_SMOLLM2.updated({"max_batch": 1, "step_base_s": step, "step_per_seq_s": 0.0,
                                "step_per_ctx_s": 0.0, "prefill_base_s": 0.0, "prefill_s_per_token": 0.0})
    r = simulate(w, PolicyConfig(name="fcfs"), cost)
    es, es2 = service.mean(), (service**2).mean()
    rho_real = lam * es
    expected = es + lam * es2 / (2 * (1 - rho_real))
    assert abs(r.latency.mean() / expected - 1) < 0.05
