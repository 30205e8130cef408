"""Traces load as published (our JSONL/CSV, BurstGPT, Azure's datetime TIMESTAMP), `-n` takes the
first n, and a run over its wall-clock budget stops with a clear message instead of hanging."""

import json

import pytest

from bench.costmodel import H100_7B
from bench.sim_cluster import BudgetExceeded, simulate
from bench.simulate import main
from bench.workloads import generate, load_trace
from engine.policy import PolicyConfig


def test_azure_trace_with_datetime_timestamps(tmp_path):
    path = tmp_path / "azure_conv.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                    "2023-11-16 18:15:46.6805900,374,44\n"
                    "2023-11-16 18:15:50.9951690,396,109\n"
                    "2023-11-16 18:15:51.2000000,879,0\n"
                    "2023-11-16 18:16:01.5000000,2000,13\n")
    w = load_trace(path)
    assert len(w) == 3  # the failed request (0 generated) is dropped
    assert w.arrival.tolist() == pytest.approx([0.0, 4.314589, 14.81941], abs=1e-5)
    assert w.prompt_len.tolist() == [374, 396, 2000] and w.output_len.tolist() == [44, 109, 13]


def test_burstgpt_csv_and_first_n(tmp_path):
    path = tmp_path / "burstgpt.csv"
    rows = "".join(f"{i * 0.5},ChatGPT,{100 + i},{10 + i},{110 + 2 * i},Conversation log\n"
                   for i in range(10))
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n" + rows)
    assert len(load_trace(path)) == 10
    w = load_trace(path, n=4)
    assert len(w) == 4 and w.prompt_len.tolist() == [100, 101, 102, 103]


def test_bad_traces_say_what_is_wrong(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("when,prompt_len,output_len\n1,2,3\n")
    with pytest.raises(ValueError, match="lacks arrival"):
        load_trace(path)
    path.write_text("TIMESTAMP,prompt_len,output_len\nyesterday,2,3\n")
    with pytest.raises(ValueError, match="ISO date-time"):
        load_trace(path)


def test_cli_honours_n_with_a_trace(tmp_path):
    trace, out = tmp_path / "t.jsonl", tmp_path / "rows.json"
    trace.write_text("".join(json.dumps({"arrival": i * 0.1, "prompt_len": 50, "output_len": 20}) + "\n"
                             for i in range(200)))
    assert main(["--trace", str(trace), "-n", "30", "--loads", "0.5", "--policies", "fcfs",
                 "--cost", "cpu-smollm2", "--out", str(out)]) == 0
    assert [r["n"] for r in json.loads(out.read_text())] == [30]


def test_a_run_over_budget_stops_with_a_message(tmp_path, capsys):
    w = generate("sharegpt", 3000, rate=50.0, seed=1)
    with pytest.raises(BudgetExceeded, match="of 3,000 requests done"):
        simulate(w, PolicyConfig(name="fcfs"), H100_7B, budget_s=0.0)
    out = tmp_path / "rows.json"
    assert main(["--workload", "alpaca", "-n", "500", "--loads", "0.9", "--policies", "fcfs,mlfq-blind",
                 "--arm-budget-s", "0", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == []
    assert "over the wall-clock budget" in capsys.readouterr().out
