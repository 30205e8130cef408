"""Per-tenant (per API key) rpm/tpm limits against real servers: Redis, the fake upstream and the
gateway; live changes through the admin API. The gateway's clock is held still, so a minute never
turns over mid-test."""

import httpx
import pytest
from gw_helpers import gateway, upstream, wait_for

from router.limits import parse_rate_limits
from router.settings import Settings

KEYS = "ka:alice:interactive,kb:bob:interactive"
ALICE, BOB = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}
ADMIN = {"Authorization": "Bearer tok"}
BODY = {"prompt": "one two three", "max_tokens": 4}


def test_limits_parse_and_a_bad_one_fails_at_start():
    assert parse_rate_limits("alice:rpm=60:tpm=20000, bot:rpm=600") == {
        "alice": {"rpm": 60, "tpm": 20000}, "bot": {"rpm": 600, "tpm": None}}
    assert parse_rate_limits("") == {}
    for bad in ("alice:rpm=0", "alice:rps=3", ":rpm=3", "alice:rpm=x"):
        with pytest.raises(ValueError):
            Settings(rate_limits=bad)


def test_over_its_rpm_a_tenant_gets_429_with_retry_after_and_others_are_untouched(redis_server):
    now = [60 * 16_667 + 20.0]  # 40 s before the minute ends
    with upstream() as up, gateway(redis_server.url, up.url, clock=lambda: now[0], api_keys=KEYS,
                                   rate_limits="alice:rpm=2") as gw:
        codes = [httpx.post(gw.url + "/v1/completions", json=BODY, headers=ALICE, timeout=30)
                 for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        refused = codes[2]
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert refused.headers["retry-after"] == "40"
        assert len(up.state.received) == 2  # the refused one never reached the engine
        for _ in range(3):
            assert httpx.post(gw.url + "/v1/completions", json=BODY, headers=BOB).status_code == 200
        now[0] += 60  # the next minute
        assert httpx.post(gw.url + "/v1/completions", json=BODY, headers=ALICE).status_code == 200


def test_over_its_tpm_a_tenant_gets_429(redis_server):
    now = [2_000_000.0]
    with upstream() as up, gateway(redis_server.url, up.url, clock=lambda: now[0], api_keys=KEYS,
                                   rate_limits="alice:tpm=5", tenant_usage_cache_s=0.0) as gw:
        first = httpx.post(gw.url + "/v1/completions", json=BODY, headers=ALICE, timeout=30)
        assert first.status_code == 200  # nothing used yet: 3 prompt + 4 output tokens served

        def refused() -> bool:  # the tokens are booked a moment after the answer
            return httpx.post(gw.url + "/v1/completions", json=BODY, headers=ALICE).status_code == 429

        wait_for(refused, timeout=20, interval=0.1)
        resp = httpx.post(gw.url + "/v1/completions", json=BODY, headers=ALICE)
        assert resp.status_code == 429 and "tokens per minute" in resp.json()["error"]["message"]
        assert int(resp.headers["retry-after"]) >= 1
        assert httpx.post(gw.url + "/v1/completions", json=BODY, headers=BOB).status_code == 200


def test_limits_change_live_through_the_admin_api(redis_server):
    now = [3_000_000.0]
    with upstream() as up, gateway(redis_server.url, up.url, clock=lambda: now[0], api_keys=KEYS,
                                   admin_token="tok") as gw:
        for _ in range(3):
            assert httpx.post(gw.url + "/v1/completions", json=BODY, headers=BOB).status_code == 200
        bad = httpx.patch(gw.url + "/admin/config/gateway", json={"rate_limits": {"bob": {"rpm": 0}}},
                          headers=ADMIN)
        assert bad.status_code == 400
        ok = httpx.patch(gw.url + "/admin/config/gateway", json={"rate_limits": {"bob": {"rpm": 1}}},
                         headers=ADMIN)
        assert ok.status_code == 200, ok.text
        now[0] += 60

        def bob_limited() -> bool:
            return httpx.post(gw.url + "/v1/completions", json=BODY, headers=BOB).status_code == 429

        wait_for(bob_limited, timeout=20, interval=0.1)
        config = httpx.get(gw.url + "/admin/config", headers=ADMIN).json()
        assert config["gateway"]["rate_limits"]["value"] == {"bob": {"rpm": 1}}
        assert httpx.patch(gw.url + "/admin/config/gateway", json={"rate_limits": {}},
                           headers=ADMIN).status_code == 200
        wait_for(lambda: not bob_limited(), timeout=20, interval=0.1)
