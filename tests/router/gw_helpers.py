"""Real servers on loopback for the gateway tests: uvicorn in threads, gateways in subprocesses."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from upstream_app import create_upstream_app

from router.app import create_app
from router.redis_server import free_port
from router.settings import Settings

REPO = Path(__file__).resolve().parents[2]


class ServerThread:
    """A uvicorn server running `app` in a thread of this process."""

    def __init__(self, app, port: int | None = None):
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(5)


@contextlib.contextmanager
def upstream(token_delay: float = 0.0, max_batch: int = 16):
    app, state = create_upstream_app(token_delay, max_batch)
    with ServerThread(app) as srv:
        srv.state = state  # type: ignore[attr-defined]
        yield srv


def gateway_settings(redis_url: str, engines: str, **overrides) -> Settings:
    base = dict(
        redis_url=redis_url,
        engines=engines,
        lease_s=1.0,
        load_poll_s=0.05,
        poll_interval_s=0.05,
        request_timeout_s=30.0,
    )
    return Settings(**{**base, **overrides})


@contextlib.contextmanager
def gateway(redis_url: str, engines: str, clock=time.time, predictor=None, **overrides):
    app = create_app(gateway_settings(redis_url, engines, **overrides), clock=clock, predictor=predictor)
    with ServerThread(app) as srv:
        srv.app = app  # type: ignore[attr-defined]
        yield srv


def control(url: str, **cmd) -> None:
    httpx.post(url + "/control", json=cmd).raise_for_status()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


class GatewayProcess:
    """`python -m router.cli serve` in a subprocess, configured by SKIPJOIN_* env vars."""

    def __init__(self, **env: str):
        self.port = free_port()
        self.env = {**os.environ, "SKIPJOIN_PORT": str(self.port), **env}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], cwd=REPO, env=self.env)
        wait_for(self._healthy, timeout=30, interval=0.1)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {self.proc.returncode}")
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
