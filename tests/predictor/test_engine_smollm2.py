"""The gateway's path on the real engine with SmolLM2 on CPU: probes, prediction, record, prefix reuse."""

import json

import httpx
import pytest

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.probe_predictor import ProbePredictor
from predictor.probes import ProbeClient
from predictor.store import ModelStore, load_seed
from predictor.trainer import Trainer

pytestmark = pytest.mark.engine

MESSAGES = [
    {
        "role": "user",
        "content": "Write an essay about the history of bicycles, from the first "
        "wooden draisines to modern carbon racing frames, covering safety and culture.",
    }
]


@pytest.fixture(scope="module")
def smollm2_url(vllm_engine):
    return vllm_engine.url


async def test_probes_predict_record_and_prime_the_prefix_cache(smollm2_url, redis_client):
    seed = load_seed()
    assert seed is not None, "build predictor/data/initial_model.json first (python -m predictor.seed)"
    config = PredictorConfig(engine_urls=(smollm2_url,), probe_timeout_s=60.0, question_sample_rate=1.0)
    async with httpx.AsyncClient() as http:
        predictor = ProbePredictor("auto", ProbeClient(http, config), ModelStore(None, seed=seed), config)
        pred = await predictor.predict(
            PredictRequest("essay", MESSAGES, max_tokens=512, replica_url=smollm2_url)
        )
        # Both probes were sent and answered; the hidden-state model answered.
        assert pred.source in ("auto:ridge", "auto:ordinal") and 1 <= pred.length <= pred.p90 <= 512
        f = pred.features
        assert f["hidden"]["layers"] == [config.feature.layer] and f["hidden"]["last"]["shape"] == [1, 576]
        assert "guess_raw" in f and (f["guess_raw"] == "" or f["guess_raw"].strip().isdigit())
        # The real request follows the probe on the same replica: its prompt prefix is reused.
        real = await http.post(
            smollm2_url + "/v1/chat/completions",
            json={"messages": MESSAGES, "max_tokens": 4, "priority": int(pred.length)},
            timeout=120,
        )
        usage = real.json()["usage"]
    # The record the gateway writes is read back by the trainer with the probe's features.
    await redis_client.xadd(
        "skipjoin:records",
        {
            "id": "x",
            "model": "smollm2",
            "prompt_tokens": usage["prompt_tokens"],
            "output_tokens": 4,
            "max_tokens": 4,
            "finish_reason": "length",
            "features": json.dumps(f),
        },
    )
    (example,) = await Trainer(redis_client, config, seed=[]).read_examples()
    assert example.capped and example.hidden["last"].shape == (1, 576) and example.asked
    # vLLM reuses whole KV blocks (32 tokens on CPU): every full block of the probe's prompt.
    assert usage["prompt_tokens_details"]["cached_tokens"] >= 32, usage
