"""Gateway overhead: latency and throughput through skipjoin vs direct to the same upstream.

Starts a Redis, the test upstream (tests/router/upstream_app.py, zero token delay) and a gateway
(`python -m router.cli serve`, heuristic predictor) as subprocesses, then sends the same requests
directly and through the gateway in one run, at concurrency 1 (added latency) and at a higher
concurrency (throughput). Usage:

    .venv/bin/python bench/proxy_overhead.py --requests 2000 --concurrency 1,16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from router.redis_server import RedisServer, free_port

REPO = Path(__file__).resolve().parents[1]
BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 8,
}


def start(args: list[str], env: dict[str, str], url: str) -> subprocess.Popen:
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def run(url: str, n: int, concurrency: int, stream: bool) -> tuple[list[float], float]:
    body = {**BODY, "stream": stream}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one() -> None:
            t = time.perf_counter()
            if stream:
                async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
                    async for _ in resp.aiter_raw():
                        pass
            else:
                resp = await client.post("/v1/chat/completions", json=body)
            assert resp.status_code == 200, resp.status_code
            latencies.append(time.perf_counter() - t)

        async def worker(count: int) -> None:
            for _ in range(count):
                await one()

        for _ in range(min(50, n)):  # warm-up: connections, code paths
            await one()
        latencies.clear()
        t0 = time.perf_counter()
        per = [n // concurrency + (i < n % concurrency) for i in range(concurrency)]
        await asyncio.gather(*(worker(c) for c in per))
        return latencies, n / (time.perf_counter() - t0)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), to report CPU per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(name: str, lat: list[float], rps: float) -> tuple[float, float]:
    p50, p99 = pct(lat, 50) * 1e3, pct(lat, 99) * 1e3
    print(f"  {name:<8} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   {rps:8.1f} req/s")
    return p50, rps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", default="1,16", help="comma-separated concurrency levels")
    ap.add_argument("--stream", action="store_true", help="streaming requests (SSE)")
    args = ap.parse_args(argv)
    up_port, gw_port = free_port(), free_port()
    up_url, gw_url = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    with RedisServer() as redis_server:
        procs = [
            start(
                [
                    sys.executable,
                    "tests/router/upstream_app.py",
                    "--port",
                    str(up_port),
                    "--max-batch",
                    "256",
                ],
                {},
                up_url,
            )
        ]
        try:
            procs.append(
                start(
                    [sys.executable, "-m", "router.cli", "serve"],
                    {
                        "SKIPJOIN_PORT": str(gw_port),
                        "SKIPJOIN_ENGINES": up_url,
                        "SKIPJOIN_REDIS_URL": redis_server.url,
                        "SKIPJOIN_PREDICTOR": "heuristic",
                    },
                    gw_url,
                )
            )
            for conc in (int(c) for c in args.concurrency.split(",")):
                print(f"concurrency {conc}, {args.requests} requests, stream={args.stream}:")
                up0 = cpu_s(procs[0].pid)
                direct = report("direct", *asyncio.run(run(up_url, args.requests, conc, args.stream)))
                n = args.requests + min(50, args.requests)
                print(
                    f"  CPU per request: upstream {(cpu_s(procs[0].pid) - up0) / n * 1e6:.0f} us (for scale)"
                )
                cpu0 = cpu_s(procs[1].pid), cpu_s(redis_server.proc.pid)
                gateway = report("gateway", *asyncio.run(run(gw_url, args.requests, conc, args.stream)))
                gw_cpu = (cpu_s(procs[1].pid) - cpu0[0]) / n * 1e6
                redis_cpu = (cpu_s(redis_server.proc.pid) - cpu0[1]) / n * 1e6
                print(f"  CPU per request: gateway {gw_cpu:.0f} us, redis {redis_cpu:.0f} us")
                print(
                    f"  added p50 {gateway[0] - direct[0]:.3f} ms; p50 ratio {gateway[0] / direct[0]:.2f}x; "
                    f"throughput ratio {gateway[1] / direct[1]:.2f}x"
                )
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
