"""Does the simulator predict the live engine? Run the same workload both ways and compare.

    python -m bench.sim_validate --url http://127.0.0.1:8001 -n 60 --rate 0.5 --policies fcfs,mlfq

Drives `skipjoin bench` against a running built-in engine (flipping its policy), then simulates
the identical request list with the `cpu-smollm2` cost preset (override with --cost-set), and
prints the mean-latency ratio sim/live per policy. Target: within 25%.
"""

from __future__ import annotations

import argparse
import asyncio

from rich.console import Console
from rich.table import Table

from bench import load
from bench.costmodel import parse_overrides, preset
from bench.sim_cluster import simulate
from bench.sim_metrics import summarize
from engine.policy import PolicyConfig


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sim_validate")
    p.add_argument("--cost", default="cpu-smollm2")
    p.add_argument("--cost-set", action="append", default=[])
    args, rest = p.parse_known_args(argv)
    largs = load.parse_args(rest)
    if not largs.policies:
        largs.policies = "fcfs,mlfq"
    cost = preset(args.cost).updated(parse_overrides(args.cost_set))
    w = load.build(largs)
    live = asyncio.run(load.amain(largs))
    t = Table(title="simulator vs live (mean latency, s)")
    for col in ("policy", "live", "sim", "sim/live", "live ttft", "sim ttft"):
        t.add_column(col, justify="right")
    worst = 0.0
    for row in live:
        r = simulate(w, PolicyConfig(name=row["policy"]), cost)
        s = summarize(w.arrival, r.first, r.done, w.output_len)
        ratio = s.mean / row["mean"]
        worst = max(worst, abs(ratio - 1))
        t.add_row(row["policy"], f"{row['mean']:.2f}", f"{s.mean:.2f}", f"{ratio:.2f}",
                  f"{row['ttft_mean']:.2f}", f"{s.ttft_mean:.2f}")
    Console().print(t)
    return 0 if worst <= 0.25 else 1


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
