"""Faults on purpose, real processes on loopback: an engine killed mid-stream, an engine that
hangs, a dispatcher frozen past its lease. The client always gets exactly one answer, or an
explicit error event once its stream had begun; never a duplicate, never a hang."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys

import httpx
from gw_helpers import REPO, GatewayProcess, ServerThread, control, gateway, upstream, wait_for
from upstream_app import create_upstream_app

from router.redis_server import free_port

FULL = "".join(f"t{i} " for i in range(20))


def stream(url: str, prompt: str, max_tokens: int = 20, first: asyncio.Event | None = None, loop=None):
    lines: list[str] = []
    body = {"prompt": prompt, "max_tokens": max_tokens, "stream": True}
    try:
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as resp:
            for line in resp.iter_lines():
                if line:
                    lines.append(line)
                    if first is not None and not first.is_set():
                        loop.call_soon_threadsafe(first.set)
    except httpx.HTTPError as exc:
        lines.append(f"transport error: {exc!r}")
    return lines


def text(lines: list[str]) -> str:
    chunks = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    return "".join(c["choices"][0].get("text", "") for c in chunks if c.get("choices"))


class UpstreamProcess:
    """The fake engine in a process of its own, so it can be SIGKILLed."""

    def __init__(self, delay: float):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable,
            "tests/router/upstream_app.py",
            "--port",
            str(self.port),
            "--delay",
            str(delay),
        ]
        self.proc = subprocess.Popen(args, cwd=REPO)
        wait_for(self._up, timeout=20, interval=0.1)

    def _up(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def received(self) -> list[str]:
        return [r["prompt"] for r in httpx.get(self.url + "/received").json()["received"]]

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def test_engine_killed_mid_stream(redis_server, redis_client):
    """Started stream: an explicit error event. Not started: re-dispatched to another engine."""
    a = UpstreamProcess(delay=0.05)
    b_port = free_port()  # b is down at first, so both requests go to a
    loop = asyncio.get_running_loop()
    try:
        with gateway(redis_server.url, f"{a.url},http://127.0.0.1:{b_port}") as gw:
            first = asyncio.Event()
            started = asyncio.create_task(asyncio.to_thread(stream, gw.url, "talking", 200, first, loop))
            held = asyncio.create_task(asyncio.to_thread(stream, gw.url, "[hold] waiting"))
            await asyncio.wait_for(first.wait(), 10)
            await asyncio.to_thread(wait_for, lambda: len(a.received()) == 2)
            app, b_state = create_upstream_app(0.0)
            with ServerThread(app, port=b_port) as b:
                control(b.url, release=True)
                await asyncio.sleep(0.5)  # b's load polls succeed: healthy
                a.kill()
                talking, waiting = await asyncio.wait_for(asyncio.gather(started, held), 20)
    finally:
        a.kill()
    err = json.loads(talking[-1][6:])["error"]
    assert err["code"] == "upstream_error" and "[DONE]" not in "".join(talking)
    assert text(talking) and FULL.startswith(text(talking)[: len(FULL)])
    assert text(waiting) == FULL and waiting[-1] == "data: [DONE]"
    assert [r["prompt"] for r in b_state.received] == ["[hold] waiting"]


async def test_hanging_engine_is_avoided_and_comes_back(redis_server, redis_client):
    with upstream() as a, upstream() as b, gateway(redis_server.url, f"{a.url},{b.url}") as gw:
        control(a.url, hang=True)
        outs = await asyncio.gather(*(asyncio.to_thread(stream, gw.url, f"p{i}") for i in range(6)))
        assert all(text(o) == FULL and o[-1] == "data: [DONE]" for o in outs)  # none stuck on a
        assert not a.state.received and len(b.state.received) == 6
        metrics = httpx.get(gw.url + "/metrics").text
        moved = re.search(r"^skipjoin_redispatched_total (\S+)$", metrics, re.M)
        assert moved and float(moved.group(1)) >= 1  # some had gone to a before it was found out
        control(a.url, hang=False)
        await asyncio.sleep(0.5)  # a answers its load polls again: healthy
        outs = await asyncio.gather(*(asyncio.to_thread(stream, gw.url, f"q{i}") for i in range(8)))
        assert all(text(o) == FULL for o in outs)
        assert any(r["prompt"].startswith("q") for r in a.state.received)  # traffic is back


async def test_frozen_dispatcher_gives_exactly_one_answer(redis_server, redis_client):
    """SIGSTOP the dispatcher holding a request past lease_s; another takes it over; SIGCONT: the
    frozen one finds its lease gone and stops. The client sees one full answer."""
    common = {
        "SKIPJOIN_REDIS_URL": redis_server.url,
        "SKIPJOIN_LEASE_S": "1.0",
        "SKIPJOIN_LOAD_POLL_S": "0.05",
    }
    with upstream(token_delay=0.02) as up:
        common["SKIPJOIN_ENGINES"] = up.url
        with (
            GatewayProcess(**common, SKIPJOIN_DISPATCH="false") as front,
            GatewayProcess(**common, SKIPJOIN_DISPATCH="true") as frozen,
        ):
            answer = asyncio.create_task(asyncio.to_thread(stream, front.url, "[hold] once"))
            await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 1)
            os.kill(frozen.proc.pid, signal.SIGSTOP)
            try:
                with GatewayProcess(**common, SKIPJOIN_DISPATCH="true"):
                    await asyncio.to_thread(wait_for, lambda: len(up.state.received) == 2, 20)
                    control(up.url, release=True)  # both copies generate now
                    await asyncio.sleep(0.3)
                    os.kill(frozen.proc.pid, signal.SIGCONT)
                    lines = await asyncio.wait_for(answer, 20)
                    await asyncio.sleep(1.0)  # the thawed one's renew and sends have run
            finally:
                os.kill(frozen.proc.pid, signal.SIGCONT)
    assert text(lines) == FULL and lines.count("data: [DONE]") == 1, lines
