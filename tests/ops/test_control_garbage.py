"""Garbage written straight into each control-plane key in Redis (past the admin API: a script, a
restore, a person with redis-cli): every gateway and engine reader refuses it whole, keeps the last
good value in force, serves on, and reports the refusal on /admin/stats."""

import json

import httpx
import redis as sync_redis
from admin_helpers import TOKEN, admin
from gw_helpers import gateway, upstream, wait_for

from engine.policy.config import PolicyConfig
from wire import control

PLAIN = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
NOT_JSON = "{not json"
NAN = '{"aging_rate": NaN}'  # Python's json writes (and reads) this


def _store(url: str, key: str, field: str, raw: str) -> int:
    """Write `raw` as the document and move the version, as the admin API would, but unchecked."""
    r = sync_redis.Redis.from_url(url)
    try:
        r.hset(key, field, raw)
        return int(r.hincrby(key, "version", 1))
    finally:
        r.close()


def _rejected(a: httpx.Client, target: str) -> dict | None:
    return a.get("/admin/stats").json()["knobs"]["rejected"].get(target)


GATEWAY_GARBAGE = [NOT_JSON, "[1, 2]", NAN, '{"aging_rate": "fast"}', '{"tenant_window_s": -1}',
                   '{"max_queue": 5.5}', '{"class_weights": {"interactive": 0}}', '{"window_min": null}',
                   '{"predictor": ["x"]}']
REPLICA_GARBAGE = [NOT_JSON, "[]", '{"https://127.0.0.1:9": {"state": "active"}}',
                   '{"http://127.0.0.1:9": "active"}', '{"http://127.0.0.1:9": {"state": "gone"}}',
                   '{"http://127.0.0.1:9": {"role": 3}}', '{"not a url": {}}']


def test_gateway_knobs(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
        a = admin(gw.url)
        for raw in GATEWAY_GARBAGE:
            _store(redis_server.url, control.GATEWAY, "knobs", "{}")  # what a case before left
            assert a.patch("/admin/config/gateway", json={"aging_rate": 3.0}).status_code == 200
            version = _store(redis_server.url, control.GATEWAY, "knobs", raw)
            wait_for(lambda v=version: (_rejected(a, "gateway") or {}).get("version") == v, timeout=10)
            assert a.get("/admin/stats").json()["knobs"]["gateway"]["aging_rate"] == 3.0, raw  # last good
            assert httpx.post(gw.url + "/v1/chat/completions", json=PLAIN, timeout=30).status_code == 200
            # An admin's next change replaces the bad document (or is refused against it), never a 5xx.
            fixed = a.patch("/admin/config/gateway", json={"aging_rate": 4.0})
            assert fixed.status_code in (200, 400), (raw, fixed.text)
            if fixed.status_code == 200:
                wait_for(lambda: _rejected(a, "gateway") is None, timeout=10)
                assert a.get("/admin/stats").json()["knobs"]["gateway"]["aging_rate"] == 4.0


def test_replica_documents(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
        a = admin(gw.url)
        before = [r["url"] for r in a.get("/admin/replicas").json()["replicas"]]
        for raw in REPLICA_GARBAGE:
            version = _store(redis_server.url, control.REPLICAS, "replicas", raw)
            wait_for(lambda v=version: (_rejected(a, "replicas") or {}).get("version") == v, timeout=10)
            assert [r["url"] for r in a.get("/admin/replicas").json()["replicas"]] == before, raw
            assert httpx.post(gw.url + "/v1/chat/completions", json=PLAIN, timeout=30).status_code == 200


def test_https_replicas_are_refused_at_the_api(redis_server, redis_client):
    """The pool speaks plain http only: accepting https would record a version no gateway can apply."""
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
        a = admin(gw.url)
        r = a.post("/admin/replicas/add", json={"url": "https://127.0.0.1:8443"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "url"
        assert a.get("/admin/config").json()["versions"]["gateway"] == 0
        assert _rejected(a, "replicas") is None


ENGINE_GARBAGE = [NOT_JSON, "[1]", '{"levels": 6.0}', '{"kv_reserve_steps": 1e9}', '{"levels": 0}',
                  '{"quantum_growth": NaN}', '{"preempt": "yes"}', '{"no_such_knob": 1}']


def test_engine_knobs(redis_server, redis_client):
    """The engine adapter's control (engine/vllm/control.py) around a stand-in scheduler that applies
    knobs as the real one does (`PolicyConfig.updated`): a bad stored set never reaches it."""
    from engine.vllm.control import EngineControl
    from engine.vllm.settings import EngineSettings

    held = {"policy": PolicyConfig()}

    def apply(knobs: dict) -> dict:
        held["policy"] = PolicyConfig().updated(knobs)
        return held["policy"].to_dict()

    settings = EngineSettings(redis_url=redis_server.url, replica_id="engine-g")
    engine = EngineControl(settings, apply, lambda: held["policy"].to_dict(), lambda: {"running": 0})
    engine.start()
    shown = None
    try:
        with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
            a = admin(gw.url)
            shown = lambda: a.get("/admin/stats").json()["engines"]  # noqa: E731
            for raw in ENGINE_GARBAGE:
                _store(redis_server.url, control.POLICY, "knobs", "{}")  # a good document again
                good = a.patch("/admin/config/engine", json={"levels": 3}).json()["version"]
                wait_for(lambda g=good: held["policy"].levels == 3 and engine.applied == g, timeout=10)
                version = _store(redis_server.url, control.POLICY, "knobs", raw)
                wait_for(lambda v=version: [(e["id"], (e.get("rejected") or {}).get("version"))
                                            for e in shown()] == [("engine-g", v)], timeout=10)
                assert held["policy"] == PolicyConfig(levels=3), raw  # the last good
                assert shown()[0]["policy"]["levels"] == 3
    finally:
        engine.stop()


def test_gateway_rejections_reach_every_gateways_stats(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
        version = _store(redis_server.url, control.GATEWAY, "knobs", NAN)
        a = admin(gw.url)
        wait_for(lambda: any((g.get("rejected") or {}).get("gateway", {}).get("version") == version
                             for g in a.get("/admin/stats").json()["gateways"]), timeout=10)
        assert json.loads(json.dumps(a.get("/admin/stats").json()))  # still plain JSON


def test_garbage_stats_documents_are_left_out_of_the_dashboard(redis_server, redis_client):
    r = sync_redis.Redis.from_url(redis_server.url)
    try:
        for i, raw in enumerate([NOT_JSON, "[1]", "7", b"\xff\xfe", '{"replicas": 3}',
                                 '{"replicas": {"http://x": {"inflight": "many"}}}']):
            r.set(control.engine_stats(f"junk-{i}"), raw, ex=60)
            r.set(control.gateway_stats(f"junk-{i}"), raw, ex=60)
        with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as gw:
            stats = admin(gw.url).get("/admin/stats")
            assert stats.status_code == 200, stats.text
            shown = {e["id"] for e in stats.json()["engines"]}  # objects are reports; nothing else is
            assert {"junk-4", "junk-5"} <= shown and not shown & {"junk-0", "junk-1", "junk-2", "junk-3"}
            assert admin(gw.url).get("/admin/replicas").status_code == 200
    finally:
        r.close()

