"""`skipjoin simulate`: trace-driven simulation of the scheduling policies on one or many replicas.

    skipjoin simulate --workload sharegpt --loads 0.3,0.5,0.8,0.9,0.95 --policies fcfs,skipjoin,srpt
    skipjoin simulate --trace burstgpt.csv --cost h100-7b --replicas 4 --placement prefix
    skipjoin simulate --report            # the results section (bench/SIM_README_SECTION.md tables)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, TimeElapsedColumn
from rich.table import Table

from bench.costmodel import PROVENANCE, parse_overrides, preset
from bench.plots import latency_vs_load
from bench.sim_cluster import PLACEMENTS, BudgetExceeded, ClusterConfig
from bench.sim_runs import ARMS, arm_named, build_workload, run_arm
from bench.workloads import SPECS, Bursts, load_trace


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skipjoin simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="sharegpt", choices=sorted(SPECS))
    p.add_argument("--trace", help="JSONL/CSV of (arrival, prompt_len, output_len); BurstGPT's and "
                   "Azure's CSVs (TIMESTAMP, ContextTokens, GeneratedTokens) load as published")
    p.add_argument("-n", "--requests", type=int, default=None,
                   help="requests to generate (default 5000), or the first n of --trace (default all)")
    p.add_argument("--arm-budget-s", type=float, default=600.0,
                   help="wall-clock seconds one policy at one load may take before it is stopped")
    p.add_argument("--loads", default="0.3,0.5,0.7,0.8,0.9,0.95")
    p.add_argument("--bursts", action="store_true", help="modulate arrivals: 1/4 of each 5 min at 1.5x")
    p.add_argument("--at-once", action="store_true", help="every request arrives at t=0")
    p.add_argument("--policies", default="fcfs,sjf,mlfq-blind,skipjoin,srpt",
                   help=f"from {sorted(ARMS)}")
    p.add_argument("--policy-set", action="append", default=[], metavar="KNOB=VALUE",
                   help="override a PolicyConfig knob of every arm (e.g. promote_after_s=5)")
    p.add_argument("--tau", type=float, default=0.55, help="Kendall's tau of the length prediction")
    p.add_argument("--cost", default="h100-7b", help="cost preset: h100-7b or cpu-smollm2")
    p.add_argument("--cost-set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--placement", default="least-load", choices=PLACEMENTS)
    p.add_argument("--gateway-queue", action="store_true", help="hold requests in the global queue")
    p.add_argument("--rebalance-s", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON results file")
    p.add_argument("--plot", help="PNG path for latency vs load")
    p.add_argument("--report", action="store_true", help="run the full results section (slow)")
    p.add_argument("--report-out", default="bench/report.md")
    return p.parse_args(argv)


def _knob(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    if value in ("None", "none"):
        return key, None
    if value in ("true", "false"):
        return key, value == "true"
    return key, float(value) if "." in value or "e" in value else int(value)


def run(args: argparse.Namespace, log=print, done=lambda label: None) -> list[dict]:
    """Every (load, policy) arm; `done(label)` is called as each one finishes (progress)."""
    cost = preset(args.cost).updated(parse_overrides(args.cost_set))
    base = load_trace(args.trace, args.requests) if args.trace else None
    n = len(base) if base is not None else args.requests or 5000
    bursts = Bursts() if args.bursts else None
    overrides = dict(_knob(k) for k in args.policy_set)
    cluster = ClusterConfig(replicas=args.replicas, placement=args.placement,
                            gateway_queue=args.gateway_queue, rebalance_s=args.rebalance_s)
    rows = []
    for load in (float(x) for x in args.loads.split(",")):
        w = build_workload(args.workload, n, load, cost, args.seed, bursts, base)
        for name in args.policies.split(","):
            try:
                result, s = run_arm(w, arm_named(name, overrides), cost, args.tau, args.seed, cluster,
                                    args.at_once, args.arm_budget_s)
            except BudgetExceeded as exc:
                log(f"{name} at load {load}: {exc} ({args.arm_budget_s:.0f} s, --arm-budget-s); skipped")
                done(f"{name} @ {load:g}")
                continue
            done(f"{name} @ {load:g}")
            rows.append({"policy": name, "load": load, "wall_s": result.wall_s,
                         "preemptions": sum(e.preemptions for e in result.engines), **s.to_dict()})
    return rows


def print_table(rows: list[dict], console: Console) -> None:
    t = Table(title="latency (s) by policy and load")
    for col in ("load", "policy", "mean", "p50", "p99", "ttft", "ttft p99", "long p99", "rps",
                "SLO ok", "preempt", "sim s"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(f"{r['load']:.2f}", r["policy"], f"{r['mean']:.2f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                  f"{r['ttft_mean']:.2f}", f"{r['ttft_p99']:.2f}", f"{r['long_p99']:.2f}",
                  f"{r['throughput_rps']:.2f}", f"{r['slo_attainment']:.0%}", str(r["preemptions"]),
                  f"{r['wall_s']:.1f}")
    console.print(t)


def slo_throughput(rows: list[dict], target: float = 0.9) -> dict[str, float]:
    """FastServe's metric: per policy, the highest throughput among the swept loads at which at
    least `target` of the requests met their latency SLO (0 when none did)."""
    out: dict[str, float] = {}
    for r in rows:
        ok = r["slo_attainment"] >= target
        out[r["policy"]] = max(out.get(r["policy"], 0.0), r["throughput_rps"] if ok else 0.0)
    return out


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.report:
        from bench.report import main as report_main

        n = ["-n", str(args.requests)] if args.requests else []
        return report_main(["--out", args.report_out, *n]
                           + (["--cost", args.cost] if args.cost != "h100-7b" else []))
    console = Console(width=160)
    console.print(f"cost preset {args.cost}: {PROVENANCE.get(args.cost, '')}")
    arms = len(args.loads.split(",")) * len(args.policies.split(","))
    columns = (*Progress.get_default_columns(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=arms)
        rows = run(args, progress.console.print,
                   lambda label: progress.update(task, advance=1, description=f"done {label}"))
    print_table(rows, console)
    for policy, rps in slo_throughput(rows).items():
        console.print(f"{policy}: throughput at SLO (>= 90% within 5x ideal + 1 s) = {rps:.2f} req/s")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    if args.plot:
        latency_vs_load(rows, args.plot, args.trace or args.workload)
    return 0
