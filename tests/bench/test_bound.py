"""The bound counts prompt work: on prompt-heavy traffic it beats every policy, including SRPT by
output tokens alone (which there does no better than FCFS)."""

from bench.costmodel import H100_7B
from bench.sim_goals import BURSTS
from bench.sim_runs import ARMS, build_workload, run_arm

COST = H100_7B.updated({"max_batch": 32, "kv_tokens": 60_000})


def test_prompt_aware_bound_is_the_lowest_mean_on_prompt_heavy_traffic():
    w = build_workload("code", 1200, 0.9, COST, seed=3, bursts=BURSTS)
    means = {name: run_arm(w, ARMS[name], COST, 0.55, seed=3)[1].mean
             for name in ("fcfs", "sjf", "srpt-output", "mlfq-blind", "skipjoin", "srpt")}
    assert means["srpt"] <= min(means.values())
    assert means["srpt"] < 0.9 * means["fcfs"]
    assert means["srpt"] < 0.9 * means["srpt-output"]  # prompt work is most of the work here
