"""`python -m bench.probe_bench --plain URL --probe URL`: what the probe's capture costs requests
that are not probes, and that it changes none of their answers.

Both engines serve the same model, one with `probe_engine_args` and one without. Rounds alternate
between them (A B A B ...); each round sends the same N prompts of the repo's prompt set at once,
greedy, no probes, and measures output tokens per second of wall time. Answers are compared text
for text across engines. Run it on an otherwise idle machine; both engines stay up throughout.

`--ttft URL` instead splits one engine's time to first token (sequential, medians): a one-word
prompt (the fixed per-request cost), the repo's prompts computed from scratch, the same with their
prefix cached (what the probe's KV saves the real request), and a probe alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import httpx

from predictor.dataset import load_prompts, messages_of
from wire.xargs import PROBE, PROBE_LAYER


async def _one(http: httpx.AsyncClient, url: str, messages: list[dict], max_tokens: int) -> tuple[str, int]:
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0}
    resp = await http.post(url + "/v1/chat/completions", json=body, timeout=600)
    resp.raise_for_status()
    data = resp.json()
    return data["choices"][0]["message"]["content"], data["usage"]["completion_tokens"]


async def _round(url: str, prompts: list[list[dict]], max_tokens: int) -> tuple[float, list[str]]:
    async with httpx.AsyncClient() as http:
        t0 = time.perf_counter()
        out = await asyncio.gather(*(_one(http, url, m, max_tokens) for m in prompts))
        wall = time.perf_counter() - t0
    return sum(n for _, n in out) / wall, [text for text, _ in out]


async def run(plain: str, probe: str, n: int, max_tokens: int, rounds: int) -> None:
    prompts = [messages_of(r) for r in load_prompts()[:n]]
    await _round(plain, prompts[:2], 4)  # warm both
    await _round(probe, prompts[:2], 4)
    rates: dict[str, list[float]] = {"plain": [], "probe": []}
    answers: dict[str, list[str]] = {}
    for i in range(rounds):
        order = (("plain", plain), ("probe", probe)) if i % 2 == 0 else (("probe", probe), ("plain", plain))
        for name, url in order:
            rate, texts = await _round(url, prompts, max_tokens)
            rates[name].append(rate)
            answers.setdefault(name, texts)
            print(f"round {i} {name}: {rate:.1f} tok/s", flush=True)
    same = sum(a == b for a, b in zip(answers["plain"], answers["probe"], strict=True))
    p, q = statistics.median(rates["plain"]), statistics.median(rates["probe"])
    spread = {k: f"{min(v):.1f}-{max(v):.1f}" for k, v in rates.items()}
    print(f"median tok/s plain {p:.1f}, probe {q:.1f} ({q / p:.3f}x); spread {spread}")
    print(f"identical greedy answers: {same}/{len(prompts)}")


async def _ttft(http: httpx.AsyncClient, url: str, body: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    resp = await http.post(url + "/v1/chat/completions", json=body | {"max_tokens": 1}, timeout=120)
    resp.raise_for_status()
    usage = resp.json()["usage"]
    return time.perf_counter() - t0, (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0


async def ttft_breakdown(url: str, n: int) -> None:
    prompts = [messages_of(r) for r in load_prompts()[::7][:n]]
    probe_flags = {"vllm_xargs": {PROBE: 1, PROBE_LAYER: 19}}
    times: dict[str, list[float]] = {"one word": [], "fresh prompt": [], "cached prefix": [], "probe": []}
    cached: list[int] = []
    async with httpx.AsyncClient() as http:
        for msgs in prompts:
            salt = uuid.uuid4().hex
            times["one word"].append(
                (await _ttft(http, url, {"messages": [{"role": "user", "content": "Hi"}]}))[0]
            )
            times["probe"].append(
                (await _ttft(http, url, {"messages": msgs, "cache_salt": salt} | probe_flags))[0]
            )
            times["fresh prompt"].append(
                (await _ttft(http, url, {"messages": msgs, "cache_salt": salt + "x"}))[0]
            )
            t, c = await _ttft(http, url, {"messages": msgs, "cache_salt": salt})
            times["cached prefix"].append(t)
            cached.append(c)
    for name, ts in times.items():
        print(f"{name:>14}: median {statistics.median(ts) * 1000:.0f} ms (n={len(ts)})")
    print(f"cached tokens of the repeat: median {statistics.median(cached):.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.probe_bench", description=__doc__)
    ap.add_argument("--plain", help="engine without the probe flags")
    ap.add_argument("--probe", help="the same engine with probe_engine_args")
    ap.add_argument("--ttft", help="only split this engine's time to first token")
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args(argv)
    if args.ttft:
        asyncio.run(ttft_breakdown(args.ttft.rstrip("/"), args.requests))
        return 0
    if not (args.plain and args.probe):
        ap.error("--plain and --probe, or --ttft")
    asyncio.run(
        run(args.plain.rstrip("/"), args.probe.rstrip("/"), args.requests, args.max_tokens, args.rounds)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
