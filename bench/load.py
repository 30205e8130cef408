"""`skipjoin bench`: an async load generator against any OpenAI-compatible URL.

    skipjoin bench --url http://127.0.0.1:8000 -n 200 --rate 2 --policies fcfs,mlfq --out r.json

Requests follow a workload (generated lengths or a trace): `max_tokens` = the output length with
`ignore_eos`, `priority` = the (noisy, tau) predicted length. TTFT is the first streamed content
chunk. `--policies` flips the engine's live policy (`PUT {url}/policy {"name": ...}`) between runs
so one command compares policies on one deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.progress import Progress

from bench.plots import latency_vs_load
from bench.sim_metrics import summarize
from bench.sim_predict import with_predictions
from bench.workloads import SPECS, Workload, generate, load_trace


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skipjoin bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="base URL (without /v1)")
    p.add_argument("--model", default="smollm2", help="the served model name (the embedded default's)")
    p.add_argument("--workload", default="alpaca", choices=sorted(SPECS))
    p.add_argument("--trace", help="JSONL/CSV trace; its arrival times are kept (scaled by --rate)")
    p.add_argument("-n", "--requests", type=int, default=100)
    p.add_argument("--rate", type=float, default=1.0, help="mean requests/s (Poisson or scaled trace)")
    p.add_argument("--duration-s", type=float, default=600.0, help="stop sending after this long")
    p.add_argument("--max-output", type=int, default=256, help="cap on max_tokens (small engines)")
    p.add_argument("--max-prompt", type=int, default=512)
    p.add_argument("--tau", type=float, help="send priority = a prediction of this Kendall's tau")
    p.add_argument("--policies", default="", help="comma list: PUT {url}/policy before each run")
    p.add_argument("--timeout-s", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON result file")
    p.add_argument("--plot", help="PNG of latency by policy")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> Workload:
    w = load_trace(args.trace).head(args.requests) if args.trace else \
        generate(args.workload, args.requests, 1.0, args.seed)
    w = w.scaled_to_rate(args.rate).replace(output_len=np.minimum(w.output_len, args.max_output),
                                            prompt_len=np.minimum(w.prompt_len, args.max_prompt))
    return with_predictions(w, args.tau, args.seed) if args.tau is not None else w


def body_for(w: Workload, i: int, model: str) -> dict:
    # One short word is about one token for common BPE vocabularies.
    body = {"model": model, "stream": True, "max_tokens": int(w.output_len[i]), "ignore_eos": True,
            "messages": [{"role": "user", "content": " ".join(["hello"] * int(w.prompt_len[i]))}]}
    if not np.isnan(w.predicted[i]):
        body["priority"] = int(w.predicted[i])
    return body


async def one(client: httpx.AsyncClient, url: str, body: dict, t0: float) -> tuple[float, float, int]:
    """(first-token time, end time, tokens seen) relative to t0; NaN times on failure."""
    first, chunks = float("nan"), 0
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                await resp.aread()
                return float("nan"), float("nan"), 0
            async for line in resp.aiter_lines():
                if not line.startswith("data:") or line.strip() == "data: [DONE]":
                    continue
                delta = json.loads(line[5:])["choices"][0].get("delta", {})
                if delta.get("content"):
                    chunks += 1
                    if chunks == 1:
                        first = time.perf_counter() - t0
    except httpx.HTTPError:
        return float("nan"), float("nan"), chunks
    return first, time.perf_counter() - t0, chunks


async def run_once(args: argparse.Namespace, w: Workload, progress: Progress, label: str) -> dict:
    n = len(w)
    first, done = np.full(n, np.nan), np.full(n, np.nan)
    sent = np.full(n, np.nan)
    task = progress.add_task(label, total=n)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=args.timeout_s, limits=limits) as client:
        t0 = time.perf_counter()

        async def fire(i: int) -> None:
            delay = w.arrival[i] - (time.perf_counter() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() - t0 > args.duration_s:
                return
            sent[i] = time.perf_counter() - t0
            first[i], done[i], _ = await one(client, args.url, body_for(w, i, args.model), t0)
            progress.advance(task)

        await asyncio.gather(*(fire(i) for i in range(n)))
    ok = ~np.isnan(sent)
    s = summarize(sent[ok], first[ok], done[ok], w.output_len[ok])
    failed = int(np.isnan(done[ok]).sum())
    return {"policy": label, "load": args.rate, "sent": int(ok.sum()), "failed": failed, **s.to_dict()}


async def set_policy(url: str, name: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.put(url + "/policy", json={"name": name})
        resp.raise_for_status()


async def amain(args: argparse.Namespace) -> list[dict]:
    w = build(args)
    rows = []
    with Progress() as progress:
        for policy in [p for p in args.policies.split(",") if p] or [""]:
            if policy:
                await set_policy(args.url, policy)
            rows.append(await run_once(args, w, progress, policy or "as deployed"))
    return rows


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    rows = asyncio.run(amain(args))
    from bench.simulate import print_table

    print_table([r | {"wall_s": 0.0, "preemptions": 0} for r in rows], Console(width=160))
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "runs": rows}, indent=1))
    if args.plot:
        latency_vs_load(rows, args.plot, f"{args.url} at {args.rate} req/s")
    return 0 if all(r["failed"] == 0 for r in rows) else 1
