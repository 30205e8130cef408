"""Child processes (the embedded engine, benchmark and test servers): start one in its own
process group, wait until its `/health` answers, stop it and everything it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def spawn(cmd: list[str], log: Path | str | None = None, env: dict[str, str] | None = None,
          cwd: Path | str | None = None) -> subprocess.Popen:
    out = open(log, "wb") if log else None  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None, cwd=cwd,
                            start_new_session=True, env={**os.environ, **(env or {})})


def wait_healthy(url: str, proc: subprocess.Popen | None, timeout: float, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} at {url} not healthy after {timeout:.0f}s")


def stop(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM to the process group (vLLM's engine and worker processes included), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(cmd: list[str], url: str, timeout: float, what: str = "server",
            **spawn_kw) -> Iterator[subprocess.Popen]:
    proc = spawn(cmd, **spawn_kw)
    try:
        wait_healthy(url, proc, timeout, what)
        yield proc
    finally:
        stop(proc)
