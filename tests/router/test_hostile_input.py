"""Hostile bodies, generated: every OpenAI route and every admin PUT/PATCH/POST body drawn with
wrong types, NaN, ±Infinity, huge and negative numbers and nested junk, against a real gateway,
Redis and the fake engine on loopback. Not one is answered with a 5xx, and after each batch the
gateway still serves a plain request correctly (with whatever knobs the batch left reset).

Bodies are written with Python's json (NaN and Infinity as literals, as a careless client sends
them); the gateway's JSON reader takes those, so they reach validation.
"""

import json

import hypothesis
import pytest
import requests
from gw_helpers import gateway, upstream
from hypothesis import strategies as st

from engine.policy.config import PolicyConfig
from router.control_knobs import KNOBS

SETTINGS = hypothesis.settings(
    deadline=None, database=None, derandomize=True, suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
TOKEN = "hostile-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
PLAIN = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}

numbers = (st.integers(-(2**70), 2**70) | st.integers(-3, 70) | st.sampled_from([2**31, 2**63, 10**30])
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.5, 1e9, 1e300, -0.0]))
scalars = st.none() | st.booleans() | numbers | st.text(max_size=12)
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def maybe(valid):
    """Mostly a value of the right kind, sometimes anything at all."""
    return st.one_of(valid, valid, junk)


part = st.fixed_dictionaries({"type": maybe(st.just("text")), "text": maybe(st.text(max_size=20))})
message = st.fixed_dictionaries(
    {"role": maybe(st.sampled_from(["user", "system", "assistant"])),
     "content": maybe(st.text(max_size=30) | st.lists(part, max_size=3))},
    optional={"name": junk})
xargs = st.dictionaries(st.sampled_from(["skipjoin_predicted", "skipjoin_predict", "skipjoin_prefix",
                                         "skipjoin_layer", "top_k", "x"]), junk, max_size=4)
COMMON = {
    "model": maybe(st.just("upstream-model")),
    "max_tokens": maybe(st.integers(0, 40)),
    "temperature": maybe(st.floats(0, 2)),
    "top_p": junk,
    "stop": maybe(st.text(max_size=4) | st.lists(st.text(max_size=4), max_size=5)),
    "stream": maybe(st.booleans()),
    "stream_options": maybe(st.fixed_dictionaries({"include_usage": st.booleans()})),
    "seed": junk,
    "user": maybe(st.text(max_size=20) | st.just("u" * 5000)),
    "priority": junk,
    "ignore_eos": maybe(st.booleans()),
    "vllm_xargs": maybe(xargs),
    "custom_params": maybe(xargs),
    "n": junk,
}
chat_bodies = st.fixed_dictionaries({}, optional={
    "messages": maybe(st.lists(message, max_size=3)), "max_completion_tokens": maybe(st.integers(0, 40)),
    **COMMON})
# Not `max_completion_tokens`: no completions field, so it reaches the engine unchecked (vLLM ignores
# it; the fake engine would read junk there as its token limit and fail: not the gateway's 5xx).
completion_bodies = st.fixed_dictionaries(
    {"prompt": maybe(st.text(max_size=30) | st.lists(st.text(max_size=10), max_size=2))},
    optional={**COMMON, "echo": junk})
POLICY = list(PolicyConfig().to_dict())
engine_bodies = st.dictionaries(st.sampled_from(POLICY + ["bogus"]), numbers | scalars | junk,
                                max_size=3) | junk
gateway_bodies = st.dictionaries(
    st.sampled_from(list(KNOBS) + ["bogus"]),
    numbers | scalars | st.dictionaries(st.sampled_from(["interactive", "batch", ""]), numbers, max_size=2)
    | junk, max_size=3) | junk
replica_bodies = st.fixed_dictionaries({}, optional={
    "url": maybe(st.sampled_from(["https://127.0.0.1:9", "http://", "http://x:99999", "ftp://h",
                                  "http://127.0.0.1:1/ x", "not a url"])),
    "role": maybe(st.sampled_from(["", "short", "long"]))}) | junk


@pytest.fixture(scope="module")
def gw(redis_server):
    # A production lease: generating cases holds the GIL this in-process gateway shares.
    with upstream() as up, gateway(redis_server.url, up.url, admin_token=TOKEN, lease_s=10.0) as g:
        g.upstream = up
        yield g


def _send(session: requests.Session, method: str, url: str, body) -> requests.Response:
    data = json.dumps(body).encode()  # NaN and Infinity included
    return session.request(method, url, data=data, headers=ADMIN, timeout=60)


def _still_serves(gw, session: requests.Session) -> None:
    """Reset what the batch changed, then a plain request is answered as before."""
    config = session.get(gw.url + "/admin/config", headers=ADMIN, timeout=30).json()
    for target in ("gateway", "engine"):
        overridden = [k for k, v in config[target].items() if str(v.get("source", "")).startswith("control")]
        for name in overridden:
            assert session.delete(f"{gw.url}/admin/config/{target}/{name}", headers=ADMIN,
                                  timeout=30).status_code == 200
    resp = session.post(gw.url + "/v1/chat/completions", json=PLAIN, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == "t0 t1 t2 "


CASES = [  # (method, path, strategy, examples): 5,000 in all
    ("POST", "/v1/chat/completions", chat_bodies, 1500),
    ("POST", "/v1/completions", completion_bodies, 800),
    ("PATCH", "/admin/config/gateway", gateway_bodies, 1000),
    ("PATCH", "/admin/config/engine", engine_bodies, 1000),
    ("POST", "/admin/replicas/add", replica_bodies, 300),
    ("POST", "/admin/replicas/pause", replica_bodies, 200),
    ("POST", "/admin/replicas/explode", replica_bodies, 200),
]


@pytest.mark.parametrize("method,path,strategy,examples", CASES, ids=[c[1] for c in CASES])
def test_no_hostile_body_gets_a_5xx(gw, method, path, strategy, examples):
    session = requests.Session()
    statuses: list[int] = []

    @hypothesis.given(body=strategy)
    @hypothesis.settings(SETTINGS, max_examples=examples)
    def call(body):
        resp = _send(session, method, gw.url + path, body)
        statuses.append(resp.status_code)
        assert resp.status_code < 500, (path, body, resp.text[:300])
        if resp.status_code >= 400:
            assert set(resp.json()["error"]) >= {"message", "type", "param", "code"}  # OpenAI's shape

    call()
    assert len(statuses) >= examples * 0.9
    assert {s for s in statuses if s >= 400} and (200 in statuses or "replicas" in path)
    _still_serves(gw, session)
