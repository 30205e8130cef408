"""Swaps are charged: unguarded size-blind MLFQ collapses, the guarded default does not."""

from bench.costmodel import H100_7B
from bench.sim_runs import ARMS, build_workload, run_arm

# An engine that cannot pause: every preemption is a swap (FastServe's setting).
COST = H100_7B.updated({"max_batch": 16, "can_pause": False})


def _run(name: str, cost=COST, n: int = 300):
    w = build_workload("sharegpt", n, 0.95, cost, seed=3)
    return run_arm(w, ARMS[name], cost, 0.55)


def test_fastserve_collapses_when_swaps_are_charged_and_skipjoin_does_not():
    _, fcfs = _run("fcfs")
    res, fast = _run("fastserve")
    _, free = _run("fastserve-free")
    _, skip = _run("skipjoin")
    assert res.engines[0].copy_charged_s > 0
    assert fast.throughput_rps < 0.5 * fcfs.throughput_rps  # collapse: a fraction of capacity
    assert free.throughput_rps > 0.9 * fcfs.throughput_rps  # the same policy with free swaps
    assert skip.throughput_rps > 0.95 * fcfs.throughput_rps


def test_pausing_in_place_costs_no_copies():
    res, fast = _run("fastserve", COST.updated({"can_pause": True}), n=150)
    assert res.engines[0].pauses > 0 and res.engines[0].copy_charged_s == 0


def test_overlap_hides_copies():
    sync = COST.updated({"swap_overlap": 0.0})
    hidden = COST.updated({"swap_overlap": 1.0})
    r_sync, _ = _run("fastserve", sync, n=100)
    r_hidden, _ = _run("fastserve", hidden, n=100)
    assert r_hidden.engines[0].copy_charged_s < r_sync.engines[0].copy_charged_s
