"""The admin API on a live gateway with a real Redis: auth, validation, audit, config sources."""

import json

import httpx
import pytest
from admin_helpers import TOKEN, admin
from gw_helpers import gateway, upstream


@pytest.fixture
def gw(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN) as g:
        g.upstream = up
        yield g


def test_admin_off_without_a_token_is_404(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url) as g:
        for path in ("/admin/config", "/admin/audit", "/dashboard/"):
            r = httpx.get(g.url + path, headers={"Authorization": "Bearer anything"})
            assert r.status_code == 404
            assert "error" in r.json()


def test_no_token_and_wrong_token_are_401(gw):
    assert httpx.get(gw.url + "/admin/config").status_code == 401
    r = httpx.get(gw.url + "/admin/config", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token"
    r = httpx.patch(gw.url + "/admin/config/gateway", json={"aging_rate": 1.0},
                    headers={"Authorization": "Basic " + TOKEN})
    assert r.status_code == 401
    assert admin(gw.url).get("/admin/config").status_code == 200


@pytest.mark.parametrize(
    "path,body,field",
    [
        ("/admin/config/gateway", {"aging_rate": -1}, "aging_rate"),
        ("/admin/config/gateway", {"class_weights": {"interactive": 0}}, "class_weights"),
        ("/admin/config/gateway", {"class_weights": {"batch": 2.0}}, "class_weights"),
        ("/admin/config/gateway", {"window_min": 5, "window_max": 2}, "window_max"),
        ("/admin/config/gateway", {"window_headroom": -1}, "window_headroom"),
        ("/admin/config/gateway", {"tenant_window_s": 0}, "tenant_window_s"),
        ("/admin/config/gateway", {"max_queue": "lots"}, "max_queue"),
        ("/admin/config/gateway", {"predictor": "oracle"}, "predictor"),
        ("/admin/config/gateway", {"no_such_knob": 1}, "no_such_knob"),
        ("/admin/config/engine", {"levels": 0}, "levels"),
        ("/admin/config/engine", {"base_quantum": 0}, "base_quantum"),
        ("/admin/config/engine", {"preempt": "yes"}, "preempt"),
        ("/admin/config/engine", {"bogus_knob": 3}, "bogus_knob"),
        # one stored value reaches every engine and gateway at once: types and ranges are strict
        ("/admin/config/engine", {"levels": 6.0}, "levels"),
        ("/admin/config/engine", {"levels": True}, "levels"),
        ("/admin/config/engine", {"kv_reserve_steps": 1e9}, "kv_reserve_steps"),
        ("/admin/config/engine", {"kv_reserve_steps": 10**9}, "kv_reserve_steps"),
        ("/admin/config/engine", {"quantum_growth": float("nan")}, "quantum_growth"),
        ("/admin/config/engine", {"promote_after_s": float("inf")}, "promote_after_s"),
        ("/admin/config/engine", {"name": 3}, "name"),
        ("/admin/config/gateway", {"tenant_window_s": float("nan")}, "tenant_window_s"),
        ("/admin/config/gateway", {"aging_rate": float("nan")}, "aging_rate"),
        ("/admin/config/gateway", {"aging_rate": float("inf")}, "aging_rate"),
        ("/admin/config/gateway", {"tenant_penalty": float("-inf")}, "tenant_penalty"),
        ("/admin/config/gateway", {"class_weights": {"interactive": float("nan")}}, "class_weights"),
        ("/admin/config/gateway", {"max_queue": 5.0}, "max_queue"),
        ("/admin/config/gateway", {"tenant_window_s": 1e300}, "tenant_window_s"),
    ],
)
def test_bad_values_are_400_naming_the_field(gw, path, body, field):
    # json.dumps writes NaN and Infinity as Python's json (and Starlette's reader) takes them
    r = admin(gw.url).patch(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert field in err["param"].split(".")
    assert field in err["message"]


def test_refused_change_is_neither_stored_nor_audited(gw):
    a = admin(gw.url)
    a.patch("/admin/config/gateway", json={"aging_rate": -5})
    assert a.get("/admin/audit").json()["entries"] == []
    assert a.get("/admin/config").json()["versions"]["gateway"] == 0


def test_audit_lists_each_change_with_who_when_old_new(gw):
    a = admin(gw.url)
    assert a.patch("/admin/config/gateway", json={"aging_rate": 3.0}).json()["version"] == 1
    assert a.patch("/admin/config/gateway", json={"aging_rate": 4.0}).json()["version"] == 2
    assert a.patch("/admin/config/engine", json={"levels": 4}).status_code == 200
    entries = a.get("/admin/audit").json()["entries"]
    assert [(e["target"], e["old"], e["new"]) for e in entries] == [
        ("engine", {}, {"levels": 4}),
        ("gateway", {"aging_rate": 3.0}, {"aging_rate": 4.0}),
        ("gateway", {}, {"aging_rate": 3.0}),
    ]
    # The token's operator (the single token is "admin"), then the label the client sent.
    assert all(e["who"] == "admin@127.0.0.1 (tester)" and e["at"] > 0 for e in entries)
    assert a.get("/admin/audit", params={"limit": 1}).json()["entries"][0]["target"] == "engine"


def test_config_says_where_each_value_came_from(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN, aging_rate=7.0) as g:
        a = admin(g.url)
        a.patch("/admin/config/gateway", json={"tenant_penalty": 0.5})
        a.patch("/admin/config/engine", json={"base_quantum": 16})
        cfg = a.get("/admin/config").json()
    gwc = cfg["gateway"]
    assert gwc["aging_rate"] == {"value": 7.0, "source": "env SKIPJOIN_AGING_RATE", "live": True}
    assert gwc["tenant_penalty"] == {"value": 0.5, "source": "control plane v1", "live": True}
    assert gwc["max_queue"]["source"] == "default"
    assert gwc["admin_token"]["value"] == "***"
    assert cfg["engine"]["base_quantum"] == {"value": 16, "source": "control plane v1"}
    assert cfg["engine"]["levels"]["source"] == "engine default"


def test_admin_changes_are_counted_in_prometheus(gw):
    admin(gw.url).patch("/admin/config/gateway", json={"aging_rate": 2.0})
    text = httpx.get(gw.url + "/metrics").text
    assert 'skipjoin_admin_changes_total{target="gateway"} 1.0' in text


def test_reset_drops_an_override_back_to_the_setting(gw):
    a = admin(gw.url)
    a.patch("/admin/config/gateway", json={"aging_rate": 99.0, "max_queue": 5})
    r = a.delete("/admin/config/gateway/aging_rate")
    assert r.status_code == 200 and r.json()["new"] == {"max_queue": 5}
    cfg = a.get("/admin/config").json()["gateway"]
    assert cfg["aging_rate"]["value"] == 10.0 and cfg["aging_rate"]["source"] == "default"
    assert gw.app.state.gateway.front.cfg.score.aging_rate == 10.0
    assert a.delete("/admin/config/gateway/aging_rate").status_code == 404
    assert a.delete("/admin/config/nowhere/x").status_code == 404
    assert a.get("/admin/audit").json()["entries"][0]["new"] == {"max_queue": 5}


def test_named_operator_tokens_put_the_token_owner_in_the_audit_log(redis_server, redis_client):
    tokens = "alice:tok-alice,bob:tok-bob"
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN, admin_tokens=tokens) as g:
        # Alice claims to be bob in the self-declared label: the log still names alice.
        alice = httpx.Client(base_url=g.url, timeout=10, headers={
            "Authorization": "Bearer tok-alice", "X-Skipjoin-Admin": "bob"})
        assert alice.patch("/admin/config/gateway", json={"aging_rate": 2.0}).status_code == 200
        bob = admin(g.url, token="tok-bob")
        assert bob.patch("/admin/config/gateway", json={"aging_rate": 3.0}).status_code == 200
        assert admin(g.url).patch("/admin/config/gateway", json={"aging_rate": 4.0}).status_code == 200
        assert admin(g.url, token="tok-carol").get("/admin/audit").status_code == 401
        whos = [e["who"] for e in bob.get("/admin/audit").json()["entries"]]
        assert whos == ["admin@127.0.0.1 (tester)", "bob@127.0.0.1 (tester)", "alice@127.0.0.1 (bob)"]
        shown = json.dumps(bob.get("/admin/config").json())
        assert "tok-alice" not in shown and "tok-bob" not in shown  # secrets are never echoed


@pytest.mark.parametrize("bad", ["alice", ":tok", "alice:", "al ice:tok", "a:same,b:same"])
def test_malformed_operator_tokens_stop_the_gateway_at_start(redis_server, bad):
    with pytest.raises(ValueError, match="SKIPJOIN_ADMIN_TOKENS"):
        with upstream() as up, gateway(redis_server.url, up.url, admin_tokens=bad):
            pass
