"""Workloads (lengths, bursts, traces, predictions) and the multi-replica simulation."""

import numpy as np

from bench.costmodel import H100_7B
from bench.sim_cluster import ClusterConfig
from bench.sim_predict import measured_tau, with_predictions
from bench.sim_runs import ARMS, build_workload, run_arm
from bench.workloads import Bursts, generate, load_trace


def test_generated_lengths_follow_the_published_means():
    w = generate("sharegpt", 20_000, seed=1)
    assert abs(w.output_len.mean() / 338.0 - 1) < 0.05
    assert abs(w.output_len.std() / w.output_len.mean() - 0.7) < 0.1


def test_bursts_keep_the_mean_rate_and_concentrate_arrivals():
    w = generate("alpaca", 20_000, rate=10.0, seed=2, bursts=Bursts(1.5, 0.25, 60.0))
    assert abs(w.rate / 10.0 - 1) < 0.05
    in_burst = np.mod(w.arrival, 60.0) < 15.0
    assert abs(in_burst.mean() - 0.375) < 0.03  # 1.5 x 0.25 of the requests land in a quarter of the time


def test_predictions_hit_the_target_tau():
    w = generate("sharegpt-heavy", 5000, seed=3)
    for tau in (0.0, 0.55, 0.8, 1.0):
        assert abs(measured_tau(with_predictions(w, tau, seed=3)) - tau) < 0.04


def test_burstgpt_csv_loads_and_drops_failures(tmp_path):
    path = tmp_path / "burst.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "5,ChatGPT,100,20,120,Conversation log\n3,GPT-4,50,0,50,Conversation log\n"
                    "9,ChatGPT,10,7,17,API log\n")
    w = load_trace(path)
    assert list(w.arrival) == [0.0, 4.0] and list(w.output_len) == [20, 7]


def test_every_placement_serves_every_request_and_prefix_placement_hits_the_cache():
    cost = H100_7B.updated({"max_batch": 16})
    w = build_workload("agents", 600, 0.9, cost, seed=4)
    w = w.scaled_to_rate(w.rate * 4)
    prefill = {}
    for placement in ("round-robin", "least-load", "prefix", "specialized"):
        cfg = ClusterConfig(4, placement, rebalance_s=1.0 if placement == "least-load" else None)
        r, s = run_arm(w, ARMS["skipjoin"], cost, 0.55, cluster=cfg)
        assert s.completed == len(w)
        prefill[placement] = sum(e.prefill_tokens for e in r.engines)
    assert prefill["prefix"] < prefill["least-load"]
    r, s = run_arm(w, ARMS["skipjoin"], cost, 0.55, cluster=ClusterConfig(4, "prefix", gateway_queue=True))
    assert s.completed == len(w)


def test_rebalancing_moves_queued_and_running_requests_and_loses_none():
    cost = H100_7B.updated({"max_batch": 8})
    w = build_workload("sharegpt", 400, 0.95, cost, seed=6)
    w = w.scaled_to_rate(w.rate * 3)
    cfg = ClusterConfig(3, "round-robin", rebalance_s=0.5, migrate_running=True)
    r, s = run_arm(w, ARMS["skipjoin"], cost, 0.55, cluster=cfg)
    assert s.completed == len(w)
    assert r.moved > 0
