"""Swap vs recompute for a preempted request, and skipjoin vs transformers' FIFO throughput (CPU).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m bench.swap_vs_recompute [--model smollm2] [--context 512]
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from engine.hf import EngineConfig, EngineRunner, GenerationRequest
from engine.policy import PolicyConfig


def prompt(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(100, 40000) for _ in range(n)]


def swap_vs_recompute(model: str, context: int) -> dict:
    """Preempt long requests for short ones; per preempted token: swap out+in vs re-prefilling."""
    policy = PolicyConfig(name="mlfq", max_swap_fraction=1.0, promote_after_s=None)
    runner = EngineRunner(EngineConfig(model=model, max_batch=2, num_blocks=128), policy)
    runner.start()
    try:
        runner.generate([GenerationRequest(input_ids=prompt(16, 0), max_new_tokens=2)])  # warm up
        start = time.perf_counter()
        runner.generate([GenerationRequest(input_ids=prompt(context, 1), max_new_tokens=0)])
        recompute_s = time.perf_counter() - start
        base = runner.stats()["generated_tokens"]
        longs = [runner.submit(GenerationRequest(input_ids=prompt(context, 10 + i), max_new_tokens=400,
                                                 ignore_eos=True, priority=2000)) for i in range(2)]
        while runner.stats()["generated_tokens"] < base + 8:  # both long prompts prefilled and decoding
            time.sleep(0.05)
        short = GenerationRequest(input_ids=prompt(8, 20), max_new_tokens=4, ignore_eos=True, priority=2)
        runner.generate([short])
        for rid in longs:
            list(runner.events(rid))
        s = runner.stats()
    finally:
        runner.stop()
    per_token_bytes = s["swap_out_bytes"] / max(s["swap_outs"], 1)
    swap_s = s["swap_seconds"] / max(s["swap_outs"], 1)  # out + in, per preempted request
    return {"context": context, "preemptions": s["preemptions"], "swaps": s["swap_outs"],
            "swap_bytes_per_request": int(per_token_bytes), "swap_out_in_s": swap_s,
            "recompute_s": recompute_s, "ratio": swap_s / recompute_s if recompute_s else float("nan")}


def throughput(model: str, scheduler: str, n: int, tokens: int) -> float:
    runner = EngineRunner(EngineConfig(model=model, max_batch=n, num_blocks=256, scheduler=scheduler))
    runner.start()
    try:
        runner.generate([GenerationRequest(input_ids=prompt(16, 0), max_new_tokens=2)])
        reqs = [GenerationRequest(input_ids=prompt(64, i), max_new_tokens=tokens, ignore_eos=True)
                for i in range(n)]
        start = time.perf_counter()
        out = runner.generate(reqs)
        return sum(map(len, out)) / (time.perf_counter() - start)
    finally:
        runner.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    print("swap vs recompute:", swap_vs_recompute(args.model, args.context))
    rates: dict[str, list[float]] = {"mlfq": [], "fifo": []}
    for _ in range(args.reps):
        for name in rates:  # interleaved, so drift in the shared machine hits both
            rates[name].append(throughput(args.model, name, args.requests, args.tokens))
    best = {k: max(v) for k, v in rates.items()}
    print(f"throughput tok/s (best of {args.reps}): skipjoin-mlfq {best['mlfq']:.1f}, "
          f"transformers-fifo {best['fifo']:.1f}, ratio {best['mlfq'] / best['fifo']:.3f}  (all: {rates})")


if __name__ == "__main__":
    main()
