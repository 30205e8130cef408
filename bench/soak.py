"""Soak: many requests from many concurrent clients through the gateway; nothing lost, doubled or
leaked.

    python -m bench.soak                                  # gateway + fast fake engine + Redis, all local
    python -m bench.soak --engine http://127.0.0.1:8100   # the gateway in front of a real engine
    python -m bench.soak --url http://127.0.0.1:8000 --pid 1234   # drive a gateway already running

Each request streams `--max-tokens` tokens with a unique tag in its prompt. Every request must end
with exactly one `[DONE]` (or be refused with 429); with the fake engine, every tag must reach the
engine exactly once. A warm-up round runs first; the gateway's RSS is read after it and at the
end. Exit status 1 if any request failed, was lost or doubled, or RSS grew 10% or more.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil

from router.procs import running
from router.redis_server import RedisServer, free_port

REPO = Path(__file__).resolve().parents[1]
FAKE_ENGINE = REPO / "tests" / "router" / "upstream_app.py"


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # anything but a full answer or a 429


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-n", "--requests", type=int, default=2000)
    p.add_argument("-c", "--concurrency", type=int, default=200)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--engine", help="a real engine's URL: the gateway (started here) sends there")
    p.add_argument("--url", help="a gateway already running: only drive load (RSS needs --pid)")
    p.add_argument("--pid", type=int, help="the --url gateway's process id, for RSS")
    p.add_argument("--model", help="model name to send (default: the first of /v1/models)")
    p.add_argument("--timeout-s", type=float, default=600.0, help="bound on the whole run")
    args = p.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0 or args.max_tokens < 1:
        p.error("requests, concurrency and max-tokens must be >= 1, warmup >= 0")
    return args


@contextlib.contextmanager
def local_stack(engine: str | None) -> Iterator[tuple[str, int, str | None]]:
    """Redis, the fake engine (unless `engine`), and a gateway process: (gateway url, pid, fake url)."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        fake = None
        if engine is None:
            port = free_port()
            fake = f"http://127.0.0.1:{port}"
            stack.enter_context(running([sys.executable, str(FAKE_ENGINE), "--port", str(port)], fake, 60.0,
                                        "fake engine", cwd=REPO))
        gw_port = free_port()
        env = {
            "SKIPJOIN_PORT": str(gw_port),
            "SKIPJOIN_REDIS_URL": redis.url,
            "SKIPJOIN_ENGINES": engine or fake or "",
            "SKIPJOIN_PREDICTOR": "heuristic",
            "SKIPJOIN_TRAIN": "false",
        }
        gw_url = f"http://127.0.0.1:{gw_port}"
        serve = [sys.executable, "-m", "router.cli", "serve"]
        gw = stack.enter_context(running(serve, gw_url, 60.0, "gateway", env=env, cwd=REPO))
        yield gw_url, gw.pid, fake


async def one(client: httpx.AsyncClient, url: str, body: dict, tally: Tally) -> None:
    t0 = time.perf_counter()
    try:
        async with client.stream("POST", url + "/v1/completions", json=body) as resp:
            tally.statuses[resp.status_code] += 1
            if resp.status_code == 429:
                await resp.aread()
                return
            lines = [x async for x in resp.aiter_lines() if x]
    except httpx.HTTPError as exc:
        tally.errors.append(f"{body['prompt']}: {exc!r}")
        return
    if resp.status_code != 200 or lines.count("data: [DONE]") != 1 or lines[-1] != "data: [DONE]":
        tally.errors.append(f"{body['prompt']}: {resp.status_code} {lines[-1:]}")
        return
    tally.latencies.append(time.perf_counter() - t0)


async def run_round(
    url: str, model: str | None, tag: str, n: int, concurrency: int, max_tokens: int
) -> Tally:
    tally = Tally()
    gate = asyncio.Semaphore(concurrency)
    # Idle connections expire before uvicorn's 5 s keep-alive does: reusing one the server is
    # closing is a client-side race (a ReadError), not a gateway failure.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2.0
    )

    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def guarded(i: int) -> None:
            body = {"prompt": f"{tag}-{i} hello", "max_tokens": max_tokens, "stream": True}
            if model:
                body["model"] = model
            async with gate:
                await one(client, url, body, tally)

        await asyncio.gather(*(guarded(i) for i in range(n)))
    return tally


def rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def duplicates_and_losses(fake: str, tag: str, n: int) -> tuple[int, int]:
    prompts = [r["prompt"] for r in httpx.get(fake + "/received", timeout=30).json()["received"]]
    seen = Counter(p.split()[0] for p in prompts if p.startswith(tag + "-"))
    doubled = sum(c - 1 for c in seen.values() if c > 1)
    lost = sum(1 for i in range(n) if f"{tag}-{i}" not in seen)
    return doubled, lost


def report(
    tally: Tally, n: int, wall: float, rss: tuple[float | None, float | None], dl: tuple[int, int] | None
) -> bool:
    lat = np.array(tally.latencies) if tally.latencies else np.array([float("nan")])
    before, after = rss
    growth = (after - before) / before if before and after else None
    print(f"requests   {n} in {wall:.1f}s ({n / wall:.0f}/s); statuses {dict(tally.statuses)}")
    print(f"errors     {len(tally.errors)}" + (f"  first: {tally.errors[0]}" if tally.errors else ""))
    print(
        f"latency    p50 {np.percentile(lat, 50) * 1000:.0f} ms  p99 {np.percentile(lat, 99) * 1000:.0f} ms"
    )
    if growth is not None:
        print(f"rss        {before:.0f} MiB after warm-up -> {after:.0f} MiB ({growth * 100:+.1f}%)")
    if dl is not None:
        print(f"engine     doubled {dl[0]}, lost {dl[1]} (429s are neither)")
    refused = tally.statuses.get(429, 0)
    lost_ok = dl is None or (dl[0] == 0 and dl[1] <= refused)
    return not tally.errors and lost_ok and (growth is None or growth < 0.10)


async def soak(args: argparse.Namespace, url: str, pid: int | None, fake: str | None) -> bool:
    model = args.model or httpx.get(url + "/v1/models", timeout=10).json()["data"][0]["id"]
    if args.warmup:
        await run_round(url, model, "warm", args.warmup, args.concurrency, args.max_tokens)
    before = rss_mib(pid)
    t0 = time.perf_counter()
    tally = await run_round(url, model, "soak", args.requests, args.concurrency, args.max_tokens)
    wall = time.perf_counter() - t0
    await asyncio.sleep(1.0)  # acks and records land
    dl = duplicates_and_losses(fake, "soak", args.requests) if fake else None
    return report(tally, args.requests, wall, (before, rss_mib(pid)), dl)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.url:
        ok = asyncio.run(asyncio.wait_for(soak(args, args.url.rstrip("/"), args.pid, None), args.timeout_s))
    else:
        with local_stack(args.engine) as (url, pid, fake):
            ok = asyncio.run(asyncio.wait_for(soak(args, url, pid, fake), args.timeout_s))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
