import httpx
import numpy as np
import pytest
from predictor_helpers import synthetic

from predictor.cache import CachedPredictor
from predictor.config import PredictorConfig
from predictor.examples import example_from_record, load_prompt_set
from predictor.heuristic import HeuristicPredictor
from predictor.probe_predictor import ProbePredictor
from predictor.registry import build_predictor
from predictor.trainer import compatible_seed
from router.settings import Settings


async def test_names_build_their_predictors(redis_client):
    assert isinstance(build_predictor("heuristic"), HeuristicPredictor)
    settings = Settings(engines="http://127.0.0.1:1", probe_timeout_s=1.5)
    async with httpx.AsyncClient() as http:
        for name in ("probe-hidden", "probe-text", "auto"):
            p = build_predictor(name, redis=redis_client, http=http, settings=settings)
            assert isinstance(p, CachedPredictor) and p.name == name
            assert (
                p.inner.config.engine_urls == ("http://127.0.0.1:1",)
                and p.inner.config.probe_timeout_s == 1.5
            )
            assert p.inner.store.bundle is not None and p.inner.store.bundle.version == 0  # the shipped model
        assert isinstance(build_predictor("auto", http=http), ProbePredictor)  # no redis: no cache
    with pytest.raises(ValueError, match="unknown predictor"):
        build_predictor("oracle")
    with pytest.raises(ValueError, match="http client"):
        build_predictor("auto")


def test_config_validates():
    with pytest.raises(ValueError):
        PredictorConfig(probe_timeout_s=0)
    with pytest.raises(ValueError):
        PredictorConfig(question_sample_rate=1.5)


def test_seed_data_joins_only_when_hidden_sizes_match():
    seed = load_prompt_set()
    config = PredictorConfig()  # layer 19, as the seed
    other_model = [example_from_record(r) for r in synthetic(5, "hidden", dim=16)]
    # Synthetic records are layer 14: the served set has no layer-19 vectors, the seed still fits.
    assert len(compatible_seed(seed, other_model, config)) == len(seed)
    from predictor.features import FeatureSpec

    config14 = PredictorConfig(feature=FeatureSpec(14, "last"))
    assert compatible_seed(seed, other_model, config14) == []  # 576 vs 16 dims
    assert np.isfinite(seed[0].hidden["last"]).all()


async def test_the_gateway_queue_depth_reaches_the_probe_predictor(redis_client):
    async def depth() -> int:
        return 0

    async with httpx.AsyncClient() as http:
        p = build_predictor("auto", redis=redis_client, http=http, queue_depth=depth)
        assert p.inner.queue_depth is depth and p.inner.memory is not None and p.store is p.inner.store
        config = PredictorConfig(engine_urls=("http://127.0.0.1:1",), probe_when_idle=True)
        always = build_predictor("auto", redis=redis_client, http=http, queue_depth=depth, config=config)
        assert always.inner.queue_depth is None
