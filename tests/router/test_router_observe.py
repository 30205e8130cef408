"""Request ids, /live and /ready, the access log and the start line, against real servers: Redis,
the fake upstream and the gateway on loopback (in-process, and `skipjoin serve` as a subprocess)."""

import json
import logging
import re
import socket
import subprocess
import sys
import threading

import httpx
import pytest
from gw_helpers import REPO, gateway, upstream, wait_for

from router.observe import new_request_id, request_id, unknown_env
from router.redis_server import RedisServer, free_port

HEX32 = re.compile(r"[0-9a-f]{32}")


def test_a_client_request_id_comes_back_and_reaches_the_engine(redis_server):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        resp = httpx.post(gw.url + "/v1/completions", json={"prompt": "hi", "max_tokens": 3},
                          headers={"X-Request-Id": "client-abc.123"})
        assert resp.status_code == 200
        assert resp.headers["x-request-id"] == "client-abc.123"
        assert up.state.received[-1]["request_id"] == "client-abc.123"


def test_without_one_the_gateway_makes_an_id_and_streams_carry_it(redis_server):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            rid = resp.headers["x-request-id"]
            assert "[DONE]" in resp.read().decode()
        assert HEX32.fullmatch(rid)
        assert up.state.received[-1]["request_id"] == rid


@pytest.mark.parametrize("offered", ["", "has space", "x" * 129, "caf\u00e9"])
def test_an_unusable_id_is_replaced(offered):
    assert HEX32.fullmatch(new_request_id(offered))


def test_every_error_carries_the_id(redis_server):
    with upstream() as up, gateway(redis_server.url, up.url, api_keys="k1:t1:interactive") as gw:
        auth = {"Authorization": "Bearer k1"}
        cases = [
            ("POST", "/v1/completions", {"content": b"{not json", "headers": auth}, 400),
            ("POST", "/v1/completions", {"json": {"prompt": "x"}}, 401),
            ("POST", "/v1/completions", {"json": {"prompt": "x", "max_tokens": -1}, "headers": auth}, 400),
            ("GET", "/no/such/path", {}, 404),
        ]
        for i, (method, path, kw, status) in enumerate(cases):
            headers = {**kw.pop("headers", {}), "X-Request-Id": f"err-{i}"}
            resp = httpx.request(method, gw.url + path, headers=headers, **kw)
            assert resp.status_code == status, (path, resp.text)
            assert resp.headers["x-request-id"] == f"err-{i}"
            if status != 404:
                assert "error" in resp.json()


def test_ready_needs_redis_and_a_healthy_engine_live_only_the_process(redis_server):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        ready = httpx.get(gw.url + "/ready", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["engines"] == {up.url: True}
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway(redis_server.url, dead) as gw:
        ready = httpx.get(gw.url + "/ready", timeout=10)
        assert ready.status_code == 503
        assert "no healthy engine" in ready.json()["error"]["message"]
        assert httpx.get(gw.url + "/live").status_code == 200
    with RedisServer() as gone, upstream() as up, gateway(gone.url, up.url) as gw:
        gone.stop()
        ready = httpx.get(gw.url + "/ready", timeout=15)
        assert ready.status_code == 503 and "redis" in ready.json()["error"]["message"]
        assert httpx.get(gw.url + "/live").json() == {"status": "alive"}


def test_unknown_skipjoin_variables_are_named():
    env = {"SKIPJOIN_ENGINE_ROLE_THRESHOLD": "1", "SKIPJOIN_ROLE_THRESHOLD": "1", "SKIPJOIN_DEVICE": "cpu",
           "SKIPJOIN_ENGINE_POLICY_JSON": "{}", "SKIPJOIN_MODELS": "/m", "SKIPJOIN_TEST_X": "1", "PATH": "/"}
    assert unknown_env(env) == ["SKIPJOIN_DEVICE", "SKIPJOIN_ENGINE_ROLE_THRESHOLD"]


def test_serve_says_where_it_is_ready_warns_on_misspelt_settings_and_logs_json(redis_server, tmp_path):
    port = free_port()
    with upstream() as up:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SKIPJOIN_PORT": str(port),
               "SKIPJOIN_REDIS_URL": redis_server.url, "SKIPJOIN_ENGINES": up.url,
               "SKIPJOIN_ACCESS_LOG": "true", "SKIPJOIN_LOG_FORMAT": "json",
               "SKIPJOIN_ENGINE_ROLE_THRESHOLD": "100", "SKIPJOIN_TRAIN": "false"}
        log = (tmp_path / "serve.log").open("w+")
        proc = subprocess.Popen([sys.executable, "-m", "router.cli", "serve"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"

            def up_and_logged() -> bool:
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                return "ready on" in (tmp_path / "serve.log").read_text()

            wait_for(up_and_logged, timeout=60, interval=0.2)
            resp = httpx.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": 2},
                              headers={"X-Request-Id": "logged-1"}, timeout=30)
            assert resp.status_code == 200
            wait_for(lambda: "logged-1" in (tmp_path / "serve.log").read_text(), timeout=10)
        finally:
            proc.terminate()
            proc.wait(30)
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
    start = [x for x in lines if x["logger"] == "skipjoin.start"]
    assert len(start) == 1 and f"ready on http://127.0.0.1:{port}" in start[0]["msg"]
    assert up.url in start[0]["msg"]
    warned = [x for x in lines if "SKIPJOIN_ENGINE_ROLE_THRESHOLD" in x["msg"]]
    assert warned and warned[0]["level"] == "warning"
    hit = [x for x in lines if x["logger"] == "skipjoin.access" and x.get("request_id") == "logged-1"]
    assert len(hit) == 1
    assert hit[0]["method"] == "POST" and hit[0]["path"] == "/v1/completions" and hit[0]["status"] == 200
    assert hit[0]["ms"] > 0 and hit[0]["bytes"] > 0


def _sample(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_latency_and_token_metrics_by_class_and_tenant(redis_server):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        for stream in (False, True):
            body = {"prompt": "one two three", "max_tokens": 5, "stream": stream}
            headers = {"X-Skipjoin-Tenant": "acme", "X-Skipjoin-Class": "batch"}
            with httpx.stream("POST", gw.url + "/v1/completions", json=body, headers=headers) as resp:
                assert resp.status_code == 200
                resp.read()
        wait_for(lambda: "skipjoin_e2e_seconds_count" in httpx.get(gw.url + "/metrics").text)
        wait_for(lambda: _sample(httpx.get(gw.url + "/metrics").text, "skipjoin_output_tokens_total",
                                 tenant="acme") == 10)
        text = httpx.get(gw.url + "/metrics").text
    assert _sample(text, "skipjoin_e2e_seconds_count", cls="batch") == 2
    assert _sample(text, "skipjoin_tpot_seconds_count", cls="batch") == 2
    assert _sample(text, "skipjoin_prompt_tokens_total", cls="batch", tenant="acme") > 0
    assert _sample(text, "skipjoin_predicted_tokens_total", cls="batch") > 0


class _Recorder(logging.Handler):
    """Each record with the request id in force where it was logged (what setup_logging writes)."""

    def __init__(self):
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def emit(self, record):
        self.lines.append((record.getMessage(), request_id.get()))


def test_the_dispatchers_log_lines_name_the_request(redis_server):
    rude = socket.create_server(("127.0.0.1", 0))  # an "engine" that hangs up on every request

    def hang_up():
        while True:
            try:
                rude.accept()[0].close()
            except OSError:
                return

    threading.Thread(target=hang_up, daemon=True).start()
    recorder = _Recorder()
    logging.getLogger("skipjoin.dispatcher").addHandler(recorder)
    try:
        with gateway(redis_server.url, f"http://127.0.0.1:{rude.getsockname()[1]}") as gw:
            resp = httpx.post(gw.url + "/v1/completions", json={"prompt": "hi"},
                              headers={"X-Request-Id": "doomed-7"}, timeout=30)
            assert resp.status_code == 502 and resp.headers["x-request-id"] == "doomed-7"
    finally:
        logging.getLogger("skipjoin.dispatcher").removeHandler(recorder)
        rude.close()
    about = [(msg, rid) for msg, rid in recorder.lines if msg.startswith("job ")]
    assert about and all(rid == "doomed-7" for _, rid in about), recorder.lines


@pytest.mark.engine
def test_the_real_engine_gets_the_request_id(redis_server, vllm_engine):
    """vLLM names its answer after the X-Request-Id it received (cmpl-<id>)."""
    url = vllm_engine.url.rstrip("/")
    with gateway(redis_server.url, url) as gw:
        resp = httpx.post(gw.url + "/v1/completions", json={"prompt": "Hello", "max_tokens": 2},
                          headers={"X-Request-Id": "rid-engine-1"}, timeout=300)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-request-id"] == "rid-engine-1"
    assert "rid-engine-1" in resp.json()["id"]


def test_an_unexpected_error_is_a_500_in_openai_shape_carrying_the_id(redis_server):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        async def boom():
            raise RuntimeError("a bug")

        gw.app.add_api_route("/boom", boom, methods=["GET"])
        resp = httpx.get(gw.url + "/boom", headers={"X-Request-Id": "bug-1"}, timeout=30)
    assert resp.status_code == 500
    assert resp.json()["error"]["message"] == "internal error"  # no internals leak to the client
    assert resp.headers["x-request-id"] == "bug-1"
