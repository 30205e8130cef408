"""Replica roles: short/long replicas take only requests predicted on their side of the threshold."""

import httpx
import pytest
from gw_helpers import gateway, upstream

from router.app import engine_roles
from router.settings import Settings


def test_tagged_replicas_take_their_lengths(redis_server, redis_client):
    with upstream() as short, upstream() as long_, upstream() as anything:
        engines = f"{short.url},{long_.url},{anything.url}"
        with gateway(redis_server.url, engines, engine_roles="short,long,", role_threshold=100) as gw:
            for n in (10, 500, 20, 900, 30):
                body = {"prompt": f"Write {n} tokens", "max_tokens": 1}
                assert httpx.post(gw.url + "/v1/completions", json=body).status_code == 200
    assert all(r["priority"] < 100 for r in short.state.received)
    assert all(r["priority"] >= 100 for r in long_.state.received)
    # Every request went somewhere it was allowed to go.
    total = len(short.state.received) + len(long_.state.received) + len(anything.state.received)
    assert total == 5


def test_bad_roles_are_rejected():
    with pytest.raises(ValueError):
        engine_roles(Settings(engines="http://a:1", engine_roles="short,long"))
    with pytest.raises(ValueError):
        engine_roles(Settings(engines="http://a:1", engine_roles="medium"))
    assert engine_roles(Settings(engines="http://a:1,http://b:2", engine_roles="long")) == ["long", ""]
