"""`skipjoin simulate` end to end: JSON rows, a PNG, and the SLO throughput metric."""

import json

import numpy as np

from bench.sim_metrics import summarize
from bench.simulate import main, slo_throughput


def test_simulate_writes_rows_and_plot(tmp_path):
    out, png = tmp_path / "r.json", tmp_path / "lat.png"
    rc = main(["--workload", "alpaca", "--cost", "cpu-smollm2", "-n", "300", "--loads", "0.5,0.9",
               "--policies", "fcfs,skipjoin,srpt", "--out", str(out), "--plot", str(png)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert {(r["policy"], r["load"]) for r in rows} == {(p, x) for p in ("fcfs", "skipjoin", "srpt")
                                                       for x in (0.5, 0.9)}
    assert all(r["completed"] == 300 and r["p99"] >= r["p50"] > 0 for r in rows)
    assert png.stat().st_size > 0


def test_summary_classes_and_slo_throughput():
    arrival = np.zeros(4)
    s = summarize(arrival, [0.1, 0.1, 0.2, 0.3], [1.0, 2.0, 3.0, 10.0], [1, 2, 3, 100], slo_s=5.0)
    assert s.long_mean == 10.0 and s.short_mean == 2.0 and s.slo_attainment == 0.75
    rows = [{"policy": "a", "slo_attainment": 0.95, "throughput_rps": 2.0},
            {"policy": "a", "slo_attainment": 0.5, "throughput_rps": 3.0},
            {"policy": "b", "slo_attainment": 0.2, "throughput_rps": 1.0}]
    assert slo_throughput(rows) == {"a": 2.0, "b": 0.0}


def test_run_reports_progress_once_per_arm():
    from bench.simulate import parse_args, run

    seen: list[str] = []
    args = parse_args(["--workload", "alpaca", "--cost", "cpu-smollm2", "-n", "50", "--loads", "0.5,0.9",
                       "--policies", "fcfs,srpt"])
    rows = run(args, done=seen.append)
    assert seen == ["fcfs @ 0.5", "srpt @ 0.5", "fcfs @ 0.9", "srpt @ 0.9"] and len(rows) == 4
