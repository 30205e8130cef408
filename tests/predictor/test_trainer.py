import json

import numpy as np
import pytest
from predictor_helpers import LAYER, record, synthetic

from predictor.config import PredictorConfig
from predictor.features import FeatureSpec
from predictor.store import ModelStore
from predictor.trainer import Trainer, recency_weights

CONFIG = PredictorConfig(
    feature=FeatureSpec(LAYER, "last"),
    trainer_min_records=40,
    trainer_min_new=10,
    trainer_interval_s=0.2,
    use_seed_data=False,
)


async def _push(redis, rows):
    for fields in rows:
        await redis.xadd("skipjoin:records", fields)


@pytest.mark.parametrize(
    ("informative", "choices"),
    [("hidden", {"ridge", "ordinal"}), ("guess", {"guess"}), ("heuristic", {"heuristic"})],
)
async def test_auto_chooses_the_predictor_that_ranks_best_on_recent_records(
    redis_client, informative, choices
):
    await _push(redis_client, synthetic(200, informative))
    bundle = await Trainer(redis_client, CONFIG, seed=[]).fit_once()
    assert bundle is not None and bundle.choice in choices, bundle.scores
    assert bundle.scores[bundle.choice] == max(bundle.scores.values())
    if informative == "hidden":
        assert bundle.scores[bundle.choice] > 0.5


async def test_trainer_publishes_and_every_replica_picks_up_the_new_version(redis_client):
    gateway_a = ModelStore(redis_client, refresh_s=0.01)
    gateway_b = ModelStore(redis_client, refresh_s=0.01)
    assert await gateway_a.current() is None
    trainer = Trainer(redis_client, CONFIG, seed=[])
    await _push(redis_client, synthetic(60, "hidden"))
    first = await trainer.step()
    assert first is not None and first.version == 1
    assert await trainer.step() is None  # no new records: no refit
    await _push(redis_client, synthetic(40, "hidden", seed=1))
    await redis_client.delete("skipjoin:predictor:model:trainer-lock")
    second = await trainer.step()
    assert second is not None and second.version == 2 and second.trained_on == 100
    for store in (gateway_a, gateway_b):
        got = await store.current()
        assert got.version == 2 and got.choice == second.choice
        x = np.zeros(16)
        assert got.predict_hidden(x) == pytest.approx(second.predict_hidden(x))


async def test_lock_lets_one_replica_fit_per_interval(redis_client):
    await _push(redis_client, synthetic(60, "hidden"))
    a, b = Trainer(redis_client, CONFIG, seed=[]), Trainer(redis_client, CONFIG, seed=[])
    results = [await a.step(), await b.step()]
    assert sum(r is not None for r in results) == 1


async def test_too_few_or_unfinished_records_publish_nothing(redis_client):
    rows = synthetic(30, "hidden")
    rows.append({**record(99, 10, None), "finish_reason": "error"})
    await _push(redis_client, rows)
    trainer = Trainer(redis_client, CONFIG, seed=[])
    assert len(await trainer.read_examples()) == 30
    assert await trainer.fit_once() is None
    assert await redis_client.get("skipjoin:predictor:model") is None


async def test_run_loop_refits_in_the_background_and_stops(redis_client):
    import asyncio

    trainer = Trainer(redis_client, CONFIG, seed=[])
    task = asyncio.create_task(trainer.run())
    await _push(redis_client, synthetic(60, "hidden"))
    store = ModelStore(redis_client, refresh_s=0.01)
    for _ in range(100):
        if await store.current() is not None:
            break
        await asyncio.sleep(0.05)
    trainer.stop()
    await asyncio.wait_for(task, 2)
    assert store.version == 1


async def test_refits_go_on_once_the_stream_is_trimmed_at_its_cap(redis_client):
    """The gateway trims the records stream at a cap: its length stops growing, records do not."""
    cap = 100
    trainer = Trainer(redis_client, CONFIG, seed=[])
    for fields in synthetic(cap, "hidden"):
        await redis_client.xadd("skipjoin:records", fields, maxlen=cap, approximate=False)
    assert (await trainer.step()).version == 1
    for fields in synthetic(30, "hidden", seed=1):
        await redis_client.xadd("skipjoin:records", fields, maxlen=cap, approximate=False)
    assert await redis_client.xlen("skipjoin:records") == cap
    await redis_client.delete("skipjoin:predictor:model:trainer-lock")
    second = await trainer.step()
    assert second is not None and second.version == 2


def test_recency_weights_halve_every_half_life():
    w = recency_weights(5, half_life=2)
    assert w[-1] == 1.0 and w[-3] == pytest.approx(0.5) and w[0] == pytest.approx(0.25)


async def test_fit_follows_recent_traffic_within_a_bounded_window(redis_client):
    """Old traffic says "x up means long", recent traffic the opposite; the window is bounded and
    weighted to the recent records, so the model follows the recent relation."""
    rows = synthetic(600, "hidden", seed=2)
    flipped = []
    for i, fields in enumerate(synthetic(300, "hidden", seed=2)):
        f = json.loads(fields["features"])
        flipped.append(record(1000 + i, int(fields["output_tokens"]), -_vector(f), heuristic=f["heuristic"]))
    config = PredictorConfig(
        feature=FeatureSpec(LAYER, "last"), trainer_window=500, trainer_half_life=100, use_seed_data=False
    )
    for fields in rows + flipped:
        await redis_client.xadd("skipjoin:records", fields)
    bundle = await Trainer(redis_client, config, seed=[]).fit_once()
    assert bundle.trained_on == 500
    x = np.stack([_vector(json.loads(f["features"])) for f in rows[:100]])
    actual = np.array([float(f["output_tokens"]) for f in rows[:100]])
    pred, _ = bundle.ridge.predict(-x)
    assert np.corrcoef(np.log(pred), np.log(actual))[0, 1] > 0.5


def _vector(features: dict) -> np.ndarray:
    from predictor.features import decode_hidden

    return np.asarray(decode_hidden(features["hidden"])["last"][0], float)


@pytest.mark.parametrize("seed", range(4))
async def test_auto_keeps_the_incumbent_when_no_candidate_ranks_better_than_chance(redis_client, seed):
    """Every input is noise: a held-out "winner" is luck, and the incumbent (heuristic) stays."""
    await _push(redis_client, synthetic(400, "none", seed=seed))
    bundle = await Trainer(redis_client, CONFIG, seed=[]).fit_once()
    assert bundle.choice == "heuristic", bundle.scores
    assert bundle.holdout_n == 100 and 0 <= bundle.confidence <= 1


async def test_a_clearly_better_challenger_replaces_the_published_choice(redis_client):
    trainer = Trainer(redis_client, CONFIG, seed=[])
    await _push(redis_client, synthetic(400, "none"))
    assert (await trainer.fit_once()).choice == "heuristic"
    await redis_client.delete("skipjoin:records")
    await _push(redis_client, synthetic(400, "hidden"))
    bundle = await trainer.fit_once()
    assert bundle.choice in ("ridge", "ordinal") and bundle.confidence >= CONFIG.switch_confidence
    assert json.loads(await redis_client.get("skipjoin:predictor:model"))["confidence"] == bundle.confidence
