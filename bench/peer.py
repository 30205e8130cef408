"""Side by side, one run: plain vLLM vs skipjoin's gateway in front of it vs full skipjoin.

    python -m bench.peer --workloads heavy-bursts,light,saturation -n 60 --repeats 2
    python -m bench.peer --lengths chat -n 120 --kv-requests 13 --workloads saturation,heavy-bursts \
        --loads 0.9,1.2 --repeats 3          # contended: KV holds ~13 requests, load vs capacity

Arms, all on the same vLLM build and model, through the same OpenAI client code:
- `vllm`: plain vLLM (its own scheduler, every request at the same priority: FCFS), direct;
- `gateway`: skipjoin's gateway → plain vLLM with `--scheduling-policy priority` (what skipjoin
  gives any engine: a predicted-length order and an admission window);
- `skipjoin`: the gateway → vLLM with skipjoin's scheduler inside (MLFQ, pause in place).
Each workload runs every arm `--repeats` times, the order reversed on every other repeat; the
table shows the median and the spread (min–max) of each metric, and ratios to `vllm`.

The regime (`bench.regime`) travels with every result: both engines get the same KV budget
(`--kv-blocks`, or `--kv-requests`: about that many requests of the workload's mean context, as
vLLM's `--num-gpu-blocks-override`) and slot limit (`--max-num-seqs`); with `--loads`, each
rate-driven workload runs at those fractions of the capacity measured in this run (plain vLLM's
sustained requests/s on the `saturation` workload, `bench.regime.sustained_rps`, first repeat).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench.load import one
from bench.plots import regime_curves
from bench.regime import (
    BLOCK_TOKENS,
    LENGTHS,
    blocks_for,
    load_label,
    requests_worth,
    split_label,
    sustained_rps,
)
from bench.sim_metrics import summarize
from bench.workloads import Bursts, LengthSpec, Workload, all_at_once, make_workload, poisson_arrivals
from router.procs import spawn, stop, wait_healthy
from router.redis_server import RedisServer, free_port

ARMS = ("vllm", "gateway", "skipjoin")
METRICS = ("mean", "p50", "p99", "ttft_mean", "ttft_p50", "ttft_p99", "tokens_per_s")


@dataclass(frozen=True)
class Shape:
    output: LengthSpec
    rate: float | None  # requests/s; None: everything at once
    bursts: Bursts | None = None


def shapes(args: argparse.Namespace) -> dict[str, Shape]:
    """Output shapes at the given mean rates (`--loads` replaces the rate by a share of capacity)."""
    heavy = LengthSpec(args.mean_output, 2.0, 2, args.max_output)
    light = LengthSpec(args.mean_output, 0.7, 2, args.max_output)
    return {
        "heavy-bursts": Shape(heavy, args.heavy_rate, Bursts(factor=2.5, share=0.3, period_s=20.0)),
        "light": Shape(light, args.light_rate),
        "saturation": Shape(heavy, None),
    }


def prompt_spec(args: argparse.Namespace) -> LengthSpec:
    lengths = LENGTHS[args.lengths]
    return LengthSpec(args.mean_prompt, lengths.prompt_cv, 8, lengths.prompt_max)


def resolve_lengths(args: argparse.Namespace) -> argparse.Namespace:
    """Length flags left unset take the `--lengths` preset's values."""
    preset = LENGTHS[args.lengths]
    for flag in ("mean_prompt", "mean_output", "max_output"):
        if getattr(args, flag) is None:
            setattr(args, flag, getattr(preset, flag))
    return args


def kv_blocks(args: argparse.Namespace) -> int | None:
    if args.kv_blocks is not None:
        return args.kv_blocks
    return blocks_for(args.kv_requests, LENGTHS[args.lengths]) if args.kv_requests else None


def regime(args: argparse.Namespace, capacity_rps: float | None) -> dict:
    blocks = kv_blocks(args)
    preset = LENGTHS[args.lengths]
    return {"lengths": args.lengths, "lengths_note": preset.note, "mean_prompt": args.mean_prompt,
            "mean_output": args.mean_output, "kv_blocks": blocks,
            "kv_tokens": blocks * BLOCK_TOKENS if blocks else None,
            "kv_requests_worth": round(requests_worth(blocks, preset), 1) if blocks else None,
            "max_num_seqs": args.max_num_seqs, "capacity_rps": capacity_rps}


def labels(args: argparse.Namespace, names: list[str], all_shapes: dict[str, Shape]) -> list[str]:
    """Workload labels to run, e.g. `heavy-bursts@0.9` for each `--loads` value."""
    loads = [float(x) for x in args.loads.split(",") if x] if args.loads else []
    out = []
    for name in names:
        if all_shapes[name].rate is None or not loads:
            out.append(name)
        else:
            out.extend(load_label(name, x) for x in loads)
    return out


def workload(name: str, shape: Shape, n: int, seed: int, prompt: LengthSpec,
             rate: float | None = None) -> Workload:
    """`rate` (requests/s) overrides the shape's, keeping its bursts."""
    rng = np.random.default_rng(seed)
    arrival = poisson_arrivals(rng, n, rate or shape.rate or 1.0, shape.bursts)
    w = make_workload(arrival, prompt.sample(rng, n), shape.output.sample(rng, n), name=name)
    return all_at_once(w) if shape.rate is None else w


# --- processes ---------------------------------------------------------------------------------
class Deployment:
    """Two engines (stock, skipjoin), two gateways, one Redis: started once, stopped at the end."""

    def __init__(self, args: argparse.Namespace, logs: Path):
        self.args, self.logs, self.procs = args, logs, []
        self.urls: dict[str, str] = {}

    def __enter__(self) -> Deployment:
        a = self.args
        self.redis = RedisServer().start()
        engine = [sys.executable, "-m", "engine.vllm.launch", "--kv-cache-gib", str(a.kv_cache_gib),
                  "--max-model-len", "2048"]
        if a.engine_threads:
            engine += ["--threads", a.engine_threads]
        vllm_args = []  # the same memory for both engines
        blocks = kv_blocks(a)
        if blocks:
            vllm_args += ["--num-gpu-blocks-override", str(blocks)]
        if a.max_num_seqs:
            vllm_args += ["--max-num-seqs", str(a.max_num_seqs)]
        stock_port, sj_port, self.control_port = free_port(), free_port(), free_port()
        # One at a time: two first starts on two cores take longer than one after the other.
        for name, port, extra in (("stock", stock_port, ["--stock"]),
                                  ("skipjoin", sj_port, ["--policy-json", a.policy_json,
                                                         "--redis-url", self.redis.url,
                                                         "--control-port", str(self.control_port)])):
            cmd = engine + ["--port", str(port), *extra] + (["--", *vllm_args] if vllm_args else [])
            proc = spawn(cmd, self.logs / f"engine-{name}.log")
            self.procs.append(proc)
            wait_healthy(f"http://127.0.0.1:{port}", proc, 900, f"{name} engine")
        self.urls["vllm"] = f"http://127.0.0.1:{stock_port}"
        self.engine_url = f"http://127.0.0.1:{sj_port}"
        for arm, port, db, predictor in (("gateway", stock_port, 1, "heuristic"),
                                         ("skipjoin", sj_port, 2, a.predictor)):
            gw_port = free_port()
            env = {"SKIPJOIN_ENGINES": f"http://127.0.0.1:{port}", "SKIPJOIN_PORT": str(gw_port),
                   "SKIPJOIN_REDIS_URL": self.redis.url.rsplit("/", 1)[0] + f"/{db}",
                   "SKIPJOIN_PREDICTOR": predictor, "SKIPJOIN_TRAIN": "false"}
            cmd = [sys.executable, "-m", "router.cli", "serve"]
            proc = spawn(cmd, self.logs / f"gateway-{arm}.log", env)
            self.procs.append(proc)
            self.urls[arm] = f"http://127.0.0.1:{gw_port}"
            wait_healthy(self.urls[arm], proc, 120, f"{arm} gateway")
        return self

    def engine_counts(self) -> dict:
        """The skipjoin engine's pause/eviction/resume counters, and vLLM's own preemption count
        on each engine (on the stock one, its priority or FCFS scheduler's): to report per run."""
        stats = httpx.get(f"http://127.0.0.1:{self.control_port}/stats", timeout=10).json()
        counts = {k: stats[k] for k in ("pauses", "evictions", "resumes", "promotions")}
        counts["stock_vllm_preemptions"] = vllm_preemptions(self.urls["vllm"])
        counts["skipjoin_vllm_preemptions"] = vllm_preemptions(self.engine_url)
        return counts

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.redis.stop()


def vllm_preemptions(url: str) -> float:
    """vLLM's cumulative preemption count from its Prometheus metrics (NaN when unreadable)."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return float("nan")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:num_preemptions_total"))


# --- running -------------------------------------------------------------------------------------
def body_for(w: Workload, i: int, run: str) -> dict:
    # One short word is about one token. The opening differs per request and per run: the plain
    # and gateway arms share one engine, and a run after the other would find its prompts cached.
    words = " ".join(["hello"] * max(int(w.prompt_len[i]) - 6, 1))
    return {"model": "smollm2", "stream": True, "max_tokens": int(w.output_len[i]), "ignore_eos": True,
            "temperature": 0, "messages": [{"role": "user", "content": f"{run} request {i}: {words}"}]}


async def run_arm(url: str, w: Workload, timeout_s: float) -> dict:
    n = len(w)
    first, done = np.full(n, np.nan), np.full(n, np.nan)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    run = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        t0 = time.perf_counter()

        async def fire(i: int) -> None:
            delay = w.arrival[i] - (time.perf_counter() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            first[i], done[i], _ = await one(client, url, body_for(w, i, run), t0)

        await asyncio.gather(*(fire(i) for i in range(n)))
    s = summarize(w.arrival, first, done, w.output_len).to_dict()
    return {**s, "failed": int(np.isnan(done).sum()),
            "sustained_rps": sustained_rps(first - w.arrival.min(), done - w.arrival.min(), w.output_len)}


def median_spread(values: list[float]) -> tuple[float, float, float]:
    return float(np.median(values)), float(min(values)), float(max(values))


def report(results: dict[str, dict[str, list[dict]]], console: Console) -> dict:
    out: dict = {}
    for wl, arms in results.items():
        table = Table(title=f"{wl}: median over repeats (min–max); ratio to plain vLLM")
        table.add_column("arm")
        for m in METRICS:
            table.add_column(m, justify="right")
        base = {m: median_spread([r[m] for r in arms["vllm"]])[0] for m in METRICS}
        out[wl] = {}
        for arm, runs in arms.items():
            if not runs:  # e.g. the capacity run: plain vLLM alone
                continue
            row, cells = {}, [arm]
            for m in METRICS:
                med, lo, hi = median_spread([r[m] for r in runs])
                ratio = med / base[m] if base[m] else float("nan")
                row[m] = {"median": med, "min": lo, "max": hi, "ratio": ratio}
                cells.append(f"{med:.2f} ({lo:.2f}–{hi:.2f}) ×{ratio:.2f}")
            row["failed"] = sum(r["failed"] for r in runs)
            out[wl][arm] = row
            table.add_row(*cells)
        console.print(table)
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="heavy-bursts,light,saturation")
    p.add_argument("-n", "--requests", type=int, default=60)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--lengths", choices=sorted(LENGTHS), default="short",
                   help="length shape (bench.regime); the three flags below override its values")
    p.add_argument("--mean-output", type=float, default=None)
    p.add_argument("--max-output", type=int, default=None)
    p.add_argument("--mean-prompt", type=float, default=None)
    p.add_argument("--heavy-rate", type=float, default=2.0, help="requests/s (mean; bursts run 2.5x)")
    p.add_argument("--light-rate", type=float, default=2.0, help="requests/s (~0.8 of capacity)")
    p.add_argument("--policy-json", default="{}", help="skipjoin's knobs for the skipjoin arm")
    p.add_argument("--predictor", default="auto", help="the skipjoin arm's gateway predictor")
    p.add_argument("--kv-cache-gib", type=float, default=2.0)
    p.add_argument("--kv-blocks", type=int, default=None,
                   help="KV budget of both engines in 32-token blocks (vLLM's --num-gpu-blocks-override)")
    p.add_argument("--kv-requests", type=float, default=None,
                   help="KV budget as about this many requests of the workload's mean context")
    p.add_argument("--max-num-seqs", type=int, default=None, help="slot limit of both engines")
    p.add_argument("--engine-threads", default=None,
                   help="cores for both engines' OpenMP, e.g. 0 (one core: a step's OpenMP barriers "
                        "then never wait on a core that something else holds)")
    p.add_argument("--loads", default=None,
                   help="comma list of loads as fractions of the capacity measured in this run")
    p.add_argument("--capacity-rps", type=float, default=None,
                   help="capacity for --loads (default: measured on the saturation workload)")
    p.add_argument("--timeout-s", type=float, default=900.0)
    p.add_argument("--out", default="results/peer.json")
    return resolve_lengths(p.parse_args(argv))


def curve_rows(summary: dict, workload: str) -> list[dict]:
    """Rows for `bench.plots.regime_curves`: one per arm and load of `workload`, medians with
    their spread."""
    keys = ("mean", "p99", "ttft_p50", "ttft_p99")
    rows = []
    for label, arms in summary.items():
        name, load = split_label(label)
        if load is None or name != workload:
            continue
        for arm, row in arms.items():
            rows.append({"policy": arm, "load": load, **{k: row[k]["median"] for k in keys},
                         "lo": {k: row[k]["min"] for k in keys}, "hi": {k: row[k]["max"] for k in keys}})
    return rows


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip()
    except OSError:
        return ""


class Runner:
    """Runs one workload label on every arm, in the given order, and keeps the results."""

    def __init__(self, args: argparse.Namespace, dep: Deployment, console: Console):
        self.args, self.dep, self.console = args, dep, console
        self.shapes, self.prompt = shapes(args), prompt_spec(args)
        self.capacity_rps: float | None = args.capacity_rps
        self.results: dict[str, dict[str, list[dict]]] = {}

    def build(self, label: str) -> Workload:
        name, load = split_label(label)
        rate = None
        if load is not None:
            if self.capacity_rps is None:
                self.measure_capacity()
            rate = load * self.capacity_rps
        w = workload(name, self.shapes[name], self.args.requests, self.args.seed, self.prompt, rate)
        return w.replace(name=label)

    def measure_capacity(self) -> None:
        """Plain vLLM's requests/s with everything queued at once (recorded as `saturation`; a
        saturation run already made serves)."""
        if not self.results.get("saturation", {}).get("vllm"):
            self.run(workload("saturation", self.shapes["saturation"], self.args.requests, self.args.seed,
                              self.prompt), "saturation", ("vllm",), rep=0)
        self.capacity_rps = float(self.results["saturation"]["vllm"][0]["sustained_rps"])
        self.console.print(f"capacity: {self.capacity_rps:.3f} requests/s (plain vLLM, everything at once)")

    def run(self, w: Workload, label: str, arms: tuple[str, ...], rep: int) -> None:
        for arm in arms:
            before = self.dep.engine_counts()
            r = asyncio.run(run_arm(self.dep.urls[arm], w, self.args.timeout_s))
            after = self.dep.engine_counts()
            r["engine"] = {k: after[k] - before[k] for k in after}
            self.results.setdefault(label, {a: [] for a in ARMS})[arm].append(r)
            self.console.print(f"[{rep}] {label:<18} {arm:<9} mean {r['mean']:.2f}s p99 {r['p99']:.2f}s "
                               f"ttft {r['ttft_mean']:.2f}s {r['tokens_per_s']:.1f} tok/s "
                               f"failed {r['failed']} engine {r['engine']}")

    def repeat(self, label: str, rep: int) -> None:
        order = ARMS if rep % 2 == 0 else tuple(reversed(ARMS))
        done = {a for a, runs in self.results.get(label, {}).items() if len(runs) > rep}
        self.run(self.build(label), label, tuple(a for a in order if a not in done), rep)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    console = Console(width=170)
    all_shapes = shapes(args)
    names = [w for w in args.workloads.split(",") if w]
    unknown = set(names) - set(all_shapes)
    if unknown:
        raise SystemExit(f"unknown workloads {sorted(unknown)}; choose from {sorted(all_shapes)}")
    todo = labels(args, names, all_shapes)
    logs = Path(tempfile.mkdtemp(prefix="skipjoin-peer-"))
    out = Path(args.out)
    with Deployment(args, logs) as dep:
        runner = Runner(args, dep, console)
        console.print(f"regime: {regime(args, args.capacity_rps)}")
        # One unrecorded pass per arm first: the first requests after start pay one-off costs.
        warm = workload(names[0], all_shapes[names[0]], min(args.requests, 16), args.seed + 1, runner.prompt)
        for arm in ARMS:
            asyncio.run(run_arm(dep.urls[arm], all_at_once(warm), args.timeout_s))
        for rep in range(args.repeats):
            for label in todo:
                runner.repeat(label, rep)
                save(out, args, runner, None)  # a cut-off run keeps what it measured
    summary = report(runner.results, console)
    save(out, args, runner, summary)
    for name in names:
        rows = curve_rows(summary, name)
        if rows:
            regime_curves(rows, out.with_name(f"{out.stem}-{name}.png"), f"live {name}: {args.lengths}, KV "
                          f"{kv_blocks(args)} blocks (median over repeats, band: min-max)")
    console.print(f"logs in {logs}; results in {args.out}")
    return 0 if all(a["failed"] == 0 for s in summary.values() for a in s.values()) else 1


def save(out: Path, args: argparse.Namespace, runner: Runner, summary: dict | None) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"args": vars(args), "commit": git_commit(), "regime": regime(args, runner.capacity_rps),
           "runs": runner.results, "summary": summary}
    out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    sys.exit(main())
