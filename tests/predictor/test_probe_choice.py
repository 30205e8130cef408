"""Which probes `auto` sends: only what its chosen model reads, a sampled share of the others, and
nothing while the gateway's queue is empty (then the last prediction for the prefix answers)."""

import random

import httpx
import numpy as np
import pytest
from predictor_helpers import LAYER
from probe_server import ProbeServer, prompt_vector

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.examples import Example
from predictor.features import FeatureSpec
from predictor.fit import fit_models
from predictor.prefix_memory import PrefixMemory
from predictor.probe_predictor import ProbePredictor
from predictor.probes import ProbeClient
from predictor.store import ModelStore

DIM = 16


@pytest.fixture(scope="module")
def server():
    with ProbeServer(LAYER, DIM) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh_counts(server):
    server.seen.clear()


def bundle_choosing(choice: str):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, DIM))
    lengths = np.expm1(4 + x[:, 0]).clip(1, 2000).astype(int)
    examples = [
        Example(int(n), 512.0, False, 120.0, {"layers": [LAYER], "last": v[None], "mean": v[None]})
        for n, v in zip(lengths, x, strict=True)
    ]
    bundle = fit_models(examples, FeatureSpec(LAYER, "last"))
    bundle.choice, bundle.scores, bundle.version = choice, {"ridge": 0.8, "ordinal": 0.7}, 3
    return bundle


def predictor(http, url, choice, queue_depth=None, memory=None, **cfg):
    config = PredictorConfig(engine_urls=(url,), feature=FeatureSpec(LAYER, "last"), **cfg)
    store = ModelStore(None, seed=bundle_choosing(choice))
    return ProbePredictor(
        "auto", ProbeClient(http, config), store, config, random.Random(0), queue_depth, memory
    )


def request(i: int) -> PredictRequest:
    text = f"Tell me about topic number {i}."
    return PredictRequest(text, [{"role": "user", "content": text}])


async def test_auto_does_not_probe_for_the_heuristic(server):
    async with httpx.AsyncClient() as http:
        auto = predictor(http, server.url, "heuristic", prefill_sample_rate=0.0, question_sample_rate=0.0)
        preds = [await auto.predict(request(i)) for i in range(10)]
    assert server.seen["prefill"] == 0 and server.seen["question"] == 0
    assert {p.source for p in preds} == {"heuristic"}


async def test_auto_probes_for_its_hidden_state_model(server):
    async with httpx.AsyncClient() as http:
        auto = predictor(http, server.url, "ridge", prefill_sample_rate=0.0, question_sample_rate=0.0)
        pred = await auto.predict(request(1))
    assert server.seen["prefill"] == 1 and server.seen["question"] == 0
    expected, _ = bundle_choosing("ridge").ridge.predict(prompt_vector("Tell me about topic number 1.", DIM))
    assert pred.source == "auto:ridge" and pred.length == pytest.approx(expected[0])


async def test_a_sampled_share_of_prefill_probes_keeps_the_hidden_models_learning(server):
    async with httpx.AsyncClient() as http:
        auto = predictor(http, server.url, "heuristic", prefill_sample_rate=0.25, question_sample_rate=0.0)
        preds = [await auto.predict(request(i)) for i in range(80)]
    assert 8 <= server.seen["prefill"] <= 32
    assert sum("hidden" in p.features for p in preds) == server.seen["prefill"]


def settable_depth():
    """A queue depth the test sets (`depth["n"]`) and the predictor reads."""
    depth = {"n": 0}

    async def queue_depth() -> int:
        return depth["n"]

    return depth, queue_depth


async def test_no_probe_while_the_queue_is_empty_and_the_prefix_remembers(server, redis_client):
    depth, queue_depth = settable_depth()
    cfg = {"prefill_sample_rate": 0.0, "question_sample_rate": 0.0}
    async with httpx.AsyncClient() as http:
        auto = predictor(http, server.url, "ridge", queue_depth, PrefixMemory(redis_client, 60), **cfg)
        idle = await auto.predict(request(1))
        assert server.seen["prefill"] == 0
        assert idle.source == "heuristic" and idle.features["probe_skipped"] == "idle"
        depth["n"] = 3
        busy = await auto.predict(request(1))
        assert server.seen["prefill"] == 1 and busy.source == "auto:ridge"
        depth["n"] = 0
        again = await auto.predict(request(1))
    assert server.seen["prefill"] == 1
    assert again.source == "auto:prefix" and again.length == pytest.approx(busy.length)


async def test_a_request_sent_no_prefill_probe_is_flagged_for_inline_prediction(server, redis_client):
    depth, queue_depth = settable_depth()
    cfg = {"prefill_sample_rate": 0.0, "question_sample_rate": 0.0}
    async with httpx.AsyncClient() as http:
        auto = predictor(http, server.url, "ridge", queue_depth, PrefixMemory(redis_client, 60), **cfg)
        idle = await auto.predict(request(1))
        depth["n"] = 3
        busy = await auto.predict(request(2))
        off = predictor(http, server.url, "ridge", queue_depth, None, inline_unprobed=False, **cfg)
        depth["n"] = 0
        not_flagged = await off.predict(request(3))
    assert idle.features["inline"]["layer"] == LAYER and idle.features["inline"]["prefix"]
    assert "inline" not in busy.features and "hidden" in busy.features  # the probe brought the feature
    assert "inline" not in not_flagged.features
