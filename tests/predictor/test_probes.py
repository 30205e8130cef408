"""Both probes against the real engine server (tiny random model: fast, its answers are noise)."""

import httpx
import pytest

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.features import FeatureSpec
from predictor.probe_predictor import ProbePredictor
from predictor.probes import ProbeClient, prefill_body, question_body
from predictor.store import ModelStore

pytest.importorskip("engine.hf.runner")
pytest.importorskip("engine.server")

MESSAGES = [{"role": "user", "content": "Write a short poem about the sea, please. " * 4}]


@pytest.fixture(scope="module")
def engine_url():
    from live_engine import serve_engine

    with serve_engine("tiny", max_batch=4, num_blocks=256, block_size=16) as (url, _):
        yield url


def _config(url: str | None, **kw) -> PredictorConfig:
    # The tiny model has 2 decoder layers.
    return PredictorConfig(
        engine_urls=(url,) if url else (), feature=FeatureSpec(1, "last"), probe_timeout_s=30.0, **kw
    )


def test_probe_bodies_are_top_priority_prefill_and_digit_question():
    req = PredictRequest("hi", MESSAGES, 100, "m")
    path, body = prefill_body(req, [14])
    assert path == "/v1/chat/completions" and body["max_tokens"] == 1 and body["priority"] == 0
    assert body["vllm_xargs"] == {"skipjoin_probe": 1, "skipjoin_layer": 14} and body["messages"] == MESSAGES
    path, body = question_body(PredictRequest("Once upon a time"), "How many tokens?", 6)
    assert path == "/v1/completions" and body["prompt"].startswith("Once upon a time")
    assert body["digits_only"] and body["max_tokens"] == 6 and body["priority"] == 0


async def test_prefill_and_question_probes_are_answered(engine_url):
    async with httpx.AsyncClient() as http:
        probes = ProbeClient(http, _config(engine_url))
        req = PredictRequest("poem", MESSAGES)
        pre = await probes.prefill(req)
        assert pre.hidden["layers"] == [1] and len(pre.hidden["last"][0]) == 64
        assert pre.prompt_tokens > 30
        q = await probes.question(req)
        assert q.answer == "" or q.answer.strip().isdigit()  # digits only, whatever the random model says


async def test_probe_predictor_records_what_the_probes_saw(engine_url):
    async with httpx.AsyncClient() as http:
        predictor = ProbePredictor(
            "auto",
            ProbeClient(http, _config(engine_url, question_sample_rate=1.0)),
            ModelStore(None),
            _config(engine_url, question_sample_rate=1.0),
        )
        pred = await predictor.predict(
            PredictRequest("poem", MESSAGES, max_tokens=50, replica_url=engine_url)
        )
    # No model fitted yet: the heuristic answers, but the features are there for the trainer.
    assert pred.source == "heuristic" and pred.length <= 50
    f = pred.features
    assert f["hidden"]["layers"] == [1] and f["prompt_tokens"] > 30 and "guess_raw" in f
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
