"""Must-show: two gateway processes and a real Redis. A class-weight change made through gateway
A's admin API changes gateway B's dispatch order within 1 s; an MLFQ knob change reaches an
engine-side watcher within 1 s."""

import contextlib
import json
import subprocess
import sys
import threading
import time

import httpx
from admin_helpers import TOKEN, admin
from gw_helpers import REPO, GatewayProcess, control, gateway, upstream, wait_for

from engine.control import KnobWatcher
from engine.policy.config import PolicyConfig


def _env(redis_url: str, engines: str, **extra: str) -> dict[str, str]:
    return {
        "SKIPJOIN_REDIS_URL": redis_url,
        "SKIPJOIN_ENGINES": engines,
        "SKIPJOIN_ADMIN_TOKEN": TOKEN,
        "SKIPJOIN_PREDICTOR": "heuristic",
        "SKIPJOIN_LOAD_POLL_S": "0.05",
        "SKIPJOIN_POLL_INTERVAL_S": "0.05",
        **extra,
    }


@contextlib.contextmanager
def both(*procs: GatewayProcess):
    """Start the processes side by side (each imports for seconds, far longer on a loaded box),
    and stop every one of them whatever happens."""
    try:
        for p in procs:
            p.proc = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], cwd=REPO, env=p.env)
        for p in procs:
            wait_for(p._healthy, timeout=120, interval=0.1)
        yield
    finally:
        for p in procs:
            p.__exit__(None, None, None)


def _order_through(gw_url: str, up, while_queued=lambda: None) -> list[str]:
    """Queue a batch and an interactive request behind a held one on `gw_url`, call
    `while_queued`, release; return the order they reached the engine."""
    control(up.url, reset=True)
    results: list[httpx.Response] = []

    def post(body: dict, cls: str) -> None:
        results.append(httpx.post(gw_url + "/v1/completions", json=body,
                                  headers={"X-Skipjoin-Class": cls}, timeout=30))

    threads = [threading.Thread(target=post, args=({"prompt": "[hold]", "max_tokens": 1}, "interactive"))]
    threads[0].start()
    wait_for(lambda: len(up.state.received) == 1, timeout=30)
    for tag, cls, n in (("B", "batch", 100), ("I", "interactive", 300)):
        threads.append(threading.Thread(target=post, args=({"prompt": f"{tag} Write {n} tokens"}, cls)))
        threads[-1].start()
    a = admin(gw_url)
    wait_for(lambda: len(a.get("/admin/requests").json()["queued"]) == 2, timeout=30)
    while_queued()
    control(up.url, release=True)
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200, 200, 200]
    return [r["prompt"].split()[0] for r in up.state.received[1:]]


def test_weight_change_on_gateway_a_reorders_gateway_b_within_1s(redis_server, redis_client):
    with upstream(max_batch=1) as up:
        env = _env(redis_server.url, up.url)
        gw_a = GatewayProcess(**env, SKIPJOIN_DISPATCH="false")
        gw_b = GatewayProcess(**env, SKIPJOIN_WINDOW_MAX="1")
        with both(gw_a, gw_b):
            # Defaults (interactive 1.0, batch 4.0): 300 x 1 < 100 x 4, interactive first.
            assert _order_through(gw_b.url, up) == ["I", "B"]
            b = admin(gw_b.url)
            version: dict[str, int] = {}

            def change_on_a() -> None:
                r = admin(gw_a.url).patch("/admin/config/gateway",
                                          json={"class_weights": {"interactive": 1.0, "batch": 0.5}})
                assert r.status_code == 200, r.text
                version["v"], changed_at = r.json()["version"], time.monotonic()
                wait_for(lambda: b.get("/admin/config").json()["versions"]["gateway_applied_here"]
                         == version["v"], timeout=2.0, interval=0.01)
                assert time.monotonic() - changed_at < 1.0

            # Both already queued on B when A takes the change: now 100 x 0.5 < 300 x 1, and the
            # batch request is dispatched first.
            assert _order_through(gw_b.url, up, while_queued=change_on_a) == ["B", "I"]
            # And B scores what it admits from now on with the new weights.
            assert _order_through(gw_b.url, up) == ["B", "I"]
            weights = b.get("/admin/config").json()["gateway"]["class_weights"]
            assert weights["value"] == {"interactive": 1.0, "batch": 0.5}
            assert weights["source"] == f"control plane v{version['v']}"
            audit = admin(gw_b.url).get("/admin/audit").json()["entries"]
            assert [(e["target"], e["new"]) for e in audit] == [
                ("gateway", {"class_weights": {"interactive": 1.0, "batch": 0.5}})]


def test_engine_knob_change_reaches_the_engine_side_within_1s(redis_server, redis_client):
    got: list[tuple[dict, int, float]] = []
    watcher = KnobWatcher(redis_server.url, lambda k, v: got.append((k, v, time.monotonic())),
                          poll_s=0.5).start()
    try:
        with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
            r = admin(gw.url).patch("/admin/config/engine", json={"levels": 4, "base_quantum": 16})
            assert r.status_code == 200, r.text
            sent = time.monotonic()
            wait_for(lambda: got, timeout=2.0, interval=0.01)
    finally:
        watcher.stop()
    knobs, version, at = got[0]
    assert at - sent < 1.0
    assert version == r.json()["version"]
    applied = PolicyConfig().updated(knobs)  # what the engine's scheduler does with them
    assert (applied.levels, applied.base_quantum) == (4, 16)
    stored = json.loads(redis_client_sync(redis_server.url).hget("skipjoin:control:policy", "knobs"))
    assert stored == {"levels": 4, "base_quantum": 16}


def redis_client_sync(url: str):
    import redis

    return redis.Redis.from_url(url)


def test_engine_replica_reports_the_new_knobs_and_its_stats_reach_the_dashboard(redis_server, redis_client):
    """The engine adapter's own control (engine/vllm/control.py) around a stand-in scheduler: a knob
    change through the admin API shows in the engine's GET /policy within 1 s."""
    from engine.vllm.control import EngineControl
    from engine.vllm.settings import EngineSettings
    from router.redis_server import free_port

    held = {"policy": PolicyConfig()}

    def apply(knobs: dict) -> dict:
        held["policy"] = PolicyConfig().updated(knobs)
        return held["policy"].to_dict()

    port = free_port()
    settings = EngineSettings(redis_url=redis_server.url, replica_id="engine-7", control_port=port)
    engine = EngineControl(settings, apply, lambda: held["policy"].to_dict(),
                           lambda: {"running": 2, "waiting": 5, "levels": [1, 1, 0]})
    engine.start()
    try:
        with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
            a = admin(gw.url)
            assert a.patch("/admin/config/engine", json={"levels": 0}).status_code == 400
            r = a.patch("/admin/config/engine", json={"levels": 3, "base_quantum": 8})
            sent = time.monotonic()
            assert r.status_code == 200
            reported = lambda: httpx.get(f"http://127.0.0.1:{port}/policy").json()  # noqa: E731
            wait_for(lambda: reported()["levels"] == 3, timeout=2.0, interval=0.01)
            assert time.monotonic() - sent < 1.0
            assert reported()["base_quantum"] == 8
            # Published once a second: wait for the first snapshot taken after the change.
            shown = lambda: a.get("/admin/stats").json()["engines"]  # noqa: E731
            wait_for(lambda: [(e["id"], e["policy"]["levels"]) for e in shown()] == [("engine-7", 3)])
            assert (shown()[0]["running"], shown()[0]["waiting"]) == (2, 5)
    finally:
        engine.stop()
