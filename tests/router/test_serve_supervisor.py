"""`skipjoin serve` supervises the engine it started: an engine that dies (SIGKILL) is restarted
with backoff and serves again, the requests sent meanwhile held in the queue and answered; one that
cannot come back makes serve exit non-zero. The engine
here is the fake one (tests/router/upstream_app.py) under serve's real supervisor and gateway: the
real vLLM-CPU engine takes minutes to start."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from gw_helpers import REPO, wait_for

from router.redis_server import free_port
from router.serve import EngineSupervisor

UPSTREAM = str(REPO / "tests" / "router" / "upstream_app.py")
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_killed_engine_is_restarted_and_one_that_cannot_start_is_given_up(tmp_path):
    port, marker, gave_up = free_port(), tmp_path / "broken", []
    # Starts while `marker` is absent; once it exists, every start fails (a broken install, a full disk).
    cmd = ["sh", "-c", f'test -e "{marker}" && exit 3; exec "{sys.executable}" "{UPSTREAM}" --port {port}']
    url = f"http://127.0.0.1:{port}"
    sup = EngineSupervisor(cmd, url, 60, lambda: gave_up.append(True), backoff_s=(0.2,), max_tries=3)
    sup.start()
    try:
        first = sup.proc.pid
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: sup.restarts == 1 and _healthy(url), timeout=60, interval=0.1)
        assert sup.proc.pid != first and not sup.gave_up
        marker.touch()
        os.kill(sup.proc.pid, signal.SIGKILL)
        wait_for(lambda: gave_up, timeout=60, interval=0.1)
        assert sup.gave_up and sup.restarts == 1
    finally:
        sup.stop()


SERVE = """
import sys
import router.serve as serve
serve.RESTART_BACKOFF_S, serve.RESTART_TRIES = (0.5,), 3
serve.engine_command = lambda settings, redis_url: {cmd!r}
sys.exit(serve.main(["--port", "{port}"]))
"""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def test_serve_restarts_its_engine_and_exits_non_zero_when_it_cannot(redis_server, tmp_path):
    port, engine_port, marker = free_port(), free_port(), tmp_path / "broken"
    cmd = ["sh", "-c", f'test -e "{marker}" && exit 3; exec "{sys.executable}" "{UPSTREAM}" '
                       f'--port {engine_port}']
    env = {**os.environ, "SKIPJOIN_REDIS_URL": redis_server.url, "SKIPJOIN_ENGINE_PORT": str(engine_port),
           "SKIPJOIN_PREDICTOR": "heuristic", "SKIPJOIN_ENGINES": ""}
    log = tmp_path / "serve.log"
    serve = subprocess.Popen([sys.executable, "-c", SERVE.format(cmd=cmd, port=port)], cwd=REPO, env=env,
                             stderr=log.open("wb"))
    gw = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(gw), timeout=120, interval=0.2)
        assert httpx.post(gw + "/v1/chat/completions", json=BODY, timeout=30).status_code == 200
        [engine] = _children(serve.pid)
        os.kill(engine, signal.SIGKILL)
        killed = time.monotonic()
        # The supervisor's thread has seen the exit (on a loaded box it may take a moment).
        wait_for(lambda: "embedded engine exited" in log.read_text(errors="replace"), timeout=30)
        # Requests sent while the engine is down wait in the queue and are served once it is back.
        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(
                lambda _: httpx.post(gw + "/v1/chat/completions", json=BODY, timeout=90), range(3)))
        assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
        assert all(a.json()["choices"][0]["message"]["content"] == "t0 t1 " for a in answers)
        [restarted] = _children(serve.pid)
        assert restarted != engine
        assert time.monotonic() - killed < 60 and serve.poll() is None
        marker.touch()
        [engine] = _children(serve.pid)
        os.kill(engine, signal.SIGKILL)
        assert serve.wait(60) == 1  # could not come back: serve exits non-zero
    finally:
        if serve.poll() is None:
            serve.terminate()
            serve.wait(30)
