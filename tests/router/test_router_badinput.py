"""Bad input the generator does not reach: invalid UTF-8, a predictor's pathological answer, and
paths that would lead to an engine's admin or policy endpoints. Real gateway, Redis, fake engine."""

import httpx
import pytest
from gw_helpers import gateway, upstream
from test_router_errors import assert_error

from predictor.base import Prediction


class Pathological:
    name = "pathological"

    def __init__(self, length: float):
        self.length = length

    async def predict(self, req):
        return Prediction(self.length, self.length, self.name)


def test_invalid_utf8_is_a_400(redis_server, redis_client):
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        resp = httpx.post(
            gw.url + "/v1/completions",
            content=b'{"prompt": "\xff\xfe"}',
            headers={"Content-Type": "application/json"},
        )
        assert_error(resp, 400)
        assert not up.state.received


@pytest.mark.parametrize("length", [float("nan"), float("inf"), -5.0, 1e300])
def test_pathological_prediction_falls_back_and_is_counted(redis_server, redis_client, length):
    with upstream() as up, gateway(redis_server.url, up.url, predictor=Pathological(length)) as gw:
        for _ in range(2):
            assert (
                httpx.post(gw.url + "/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code
                == 200
            )
        metrics = httpx.get(gw.url + "/metrics").text
    assert "skipjoin_predictor_fallbacks_total 2.0" in metrics
    assert all(isinstance(r["priority"], int) and r["priority"] >= 0 for r in up.state.received)


ENGINE_ONLY = ["/control", "/load", "/received", "/policy", "/knobs", "/admin/config", "/v1/../control"]


def test_engine_admin_and_policy_endpoints_are_not_reachable(redis_server, redis_client):
    """The gateway forwards only completions, to fixed engine paths: nothing a client sends
    reaches an engine's control, policy or load endpoints."""
    with upstream() as up, gateway(redis_server.url, up.url) as gw:
        for path in ENGINE_ONLY:
            for method in ("GET", "POST", "PUT"):
                resp = httpx.request(
                    method, gw.url + path, json={"hang": True, "release": True, "reset": True}
                )
                assert resp.status_code in (404, 405), (method, path, resp.status_code)
        body = {"prompt": "x", "max_tokens": 1, "path": "/control", "url": up.url + "/control"}
        assert httpx.post(gw.url + "/v1/completions/../../control", json=body).status_code in (404, 405)
        assert httpx.post(gw.url + "/v1/completions", json=body).status_code == 200
    assert not up.state.hang and not up.state.release.is_set()  # no control call arrived
    assert [r["prompt"] for r in up.state.received] == ["x"]


def test_keys_and_bodies_are_never_logged(redis_server, redis_client, caplog):
    """Everything the gateway logs at DEBUG while serving, refusing and failing requests holds no
    API key and no request or response body."""
    key, wrong, secret = "sk-live-7a1f", "sk-wrong-93c2", "SECRET-PROMPT-5531"
    caplog.set_level("DEBUG")
    with (
        upstream() as up,
        gateway(redis_server.url, up.url, api_keys=f"{key}:t:interactive") as gw,
    ):
        ok = {"Authorization": f"Bearer {key}"}
        bad = {"Authorization": f"Bearer {wrong}"}
        body = {"prompt": secret, "max_tokens": 2}
        assert httpx.post(gw.url + "/v1/completions", json=body, headers=ok).status_code == 200
        assert httpx.post(gw.url + "/v1/completions", json=body, headers=bad).status_code == 401
        assert (
            httpx.post(gw.url + "/v1/completions", json={**body, "x_refuse": secret}, headers=ok).status_code
            == 400
        )
        assert (
            httpx.post(gw.url + "/v1/completions", json={**body, "model": secret}, headers=ok).status_code
            == 404
        )
    logged = caplog.text
    assert caplog.records  # the gateway did log (its lifecycle at least)
    for s in (key, wrong, secret, "t0 t1"):
        assert s not in logged
