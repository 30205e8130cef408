"""Named policy arms and workload builders shared by `skipjoin simulate` and its report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.costmodel import CostModel
from bench.sim_cluster import ClusterConfig, SimResult, simulate
from bench.sim_metrics import Summary, default_slo, summarize
from bench.sim_predict import with_predictions
from bench.workloads import Bursts, Workload, all_at_once, generate, poisson_arrivals
from engine.policy import PolicyConfig


@dataclass(frozen=True)
class Arm:
    """A policy as compared: its config, whether it sees predictions, whether swaps are free."""

    config: PolicyConfig
    predicted: bool  # sees the (noisy, tau) prediction; False: size-blind
    exact: bool = False  # sees the true length (the oracle)
    free_swaps: bool = False


# FastServe as published: quanta 8*2^k, frequent promotion, no cost check, no swap budget.
FASTSERVE = PolicyConfig(name="mlfq", base_quantum=8, promote_after_s=2.0, min_level_gap=0,
                         max_swap_fraction=1.0, cost_guard=False, max_preempt_per_step=64)

ARMS = {
    "fcfs": Arm(PolicyConfig(name="fcfs"), predicted=False),
    "sjf": Arm(PolicyConfig(name="sjf"), predicted=True),
    "mlfq-blind": Arm(PolicyConfig(name="mlfq"), predicted=False),
    "fastserve": Arm(FASTSERVE, predicted=False),
    "fastserve-free": Arm(FASTSERVE, predicted=False, free_swaps=True),
    "skipjoin": Arm(PolicyConfig(name="mlfq"), predicted=True),
    # The bound: exact lengths, free swaps, remaining work counted as prefill + decode.
    "srpt": Arm(PolicyConfig(name="srpt"), predicted=True, exact=True, free_swaps=True),
    # The same by remaining output tokens only (no bound on prompt-heavy traffic).
    "srpt-output": Arm(PolicyConfig(name="srpt", prompt_aware=False), predicted=True, exact=True,
                       free_swaps=True),
}


def arm_named(name: str, overrides: dict | None = None) -> Arm:
    try:
        arm = ARMS[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose from {sorted(ARMS)}") from None
    if overrides:
        arm = Arm(arm.config.updated(overrides), arm.predicted, arm.exact, arm.free_swaps)
    return arm


def build_workload(name: str, n: int, load: float, cost: CostModel, seed: int = 0,
                   bursts: Bursts | None = None, base: Workload | None = None) -> Workload:
    """`name`'s lengths (or the `base` trace), arrivals scaled to `load` x the saturated rate."""
    w = base if base is not None else generate(name, n, 1.0, seed)
    rate = load * cost.saturated_rps(float(w.prompt_len.mean()), float(w.output_len.mean()))
    if base is not None:
        return w.scaled_to_rate(rate)
    # Arrivals drawn at the final rate, so burst periods keep their length in seconds.
    arrival = poisson_arrivals(np.random.default_rng(seed + 7), n, rate, bursts)
    return w.replace(arrival=arrival, name=w.name + ("-bursts" if bursts else ""))


def run_arm(w: Workload, arm: Arm, cost: CostModel, tau: float | None, seed: int = 0,
            cluster: ClusterConfig | None = None, at_once: bool = False,
            budget_s: float | None = None) -> tuple[SimResult, Summary]:
    """Simulate one arm; BudgetExceeded after `budget_s` wall seconds."""
    if arm.exact:
        w = with_predictions(w, 1.0)
    elif arm.predicted:
        w = with_predictions(w, tau, seed)
    else:
        w = with_predictions(w, None)
    if at_once:
        w = all_at_once(w)
    c = cost.updated({"kv_bytes_per_token": 0.0}) if arm.free_swaps else cost
    result = simulate(w, arm.config, c, cluster, budget_s)
    solo = cost.step_s(1, float(w.prompt_len.mean()))
    return result, summarize(w.arrival, result.first, result.done, w.output_len,
                             default_slo(w.output_len, solo))
