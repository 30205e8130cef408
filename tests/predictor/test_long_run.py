"""Long run: 150k served records through a real Redis trimmed at the gateway's production cap; the
trainer keeps refitting and the published model version keeps advancing past the cap."""

import time

from predictor_helpers import LAYER, synthetic

from predictor.config import PredictorConfig
from predictor.features import FeatureSpec
from predictor.store import ModelStore
from predictor.trainer import RECORDS_STREAM, Trainer
from router.records import RECORDS_MAXLEN

TOTAL, BATCH = 150_000, 15_000
CONFIG = PredictorConfig(
    feature=FeatureSpec(LAYER, "last"),
    trainer_interval_s=0.001,  # the lock lapses at once: every step may refit
    trainer_window=400,
    trainer_half_life=200,
    use_seed_data=False,
)


async def _add_batch(redis, templates, start: int) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(start, start + BATCH):
            fields = {**templates[i % len(templates)], "id": f"r{i}"}
            pipe.xadd(RECORDS_STREAM, fields, maxlen=RECORDS_MAXLEN, approximate=True)
        await pipe.execute()


async def test_refits_keep_coming_through_150k_records_at_the_production_cap(redis_client):
    templates = synthetic(1000, "hidden", dim=4)
    trainer = Trainer(redis_client, CONFIG, seed=[])
    gateway = ModelStore(redis_client, refresh_s=0.0)
    versions, lengths = [], []
    t0 = time.monotonic()
    for start in range(0, TOTAL, BATCH):
        await _add_batch(redis_client, templates, start)
        lengths.append(await redis_client.xlen(RECORDS_STREAM))
        time.sleep(0.002)  # let the 1 ms lock lapse
        bundle = await trainer.step()
        assert bundle is not None, f"no refit after {start + BATCH} records (stream length {lengths[-1]})"
        versions.append((await gateway.current()).version)
    at_cap = [n for n in lengths if n >= RECORDS_MAXLEN]
    assert len(at_cap) >= 4 and max(lengths) < RECORDS_MAXLEN * 1.1  # trimmed, and refits went on
    assert versions == list(range(1, TOTAL // BATCH + 1))
    assert bundle.trained_on == CONFIG.trainer_window and bundle.choice in ("ridge", "ordinal")
    assert await trainer.step() is None  # nothing new since the last fit
    assert time.monotonic() - t0 < 120
