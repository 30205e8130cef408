"""Online learning: refit from the gateway's finished-request records and publish through Redis.

Every gateway replica may run a trainer; a Redis lock lets one of them fit per interval. Fitting
runs in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from predictor.bundle import ModelBundle
from predictor.config import PredictorConfig
from predictor.examples import Example, example_from_record, load_prompt_set
from predictor.fit import fit_and_rank, matrix
from predictor.store import MODEL_KEY, publish

RECORDS_STREAM = "skipjoin:records"
log = logging.getLogger(__name__)


def split_recent(served: Sequence[Example], fraction: float) -> tuple[list[Example], list[Example]]:
    """The newest `fraction` of records is held out: the ranking should hold on recent traffic."""
    n_hold = max(1, int(round(len(served) * fraction)))
    return list(served[:-n_hold]), list(served[-n_hold:])


def compatible_seed(
    seed: Sequence[Example], served: Sequence[Example], config: PredictorConfig
) -> list[Example]:
    """Seed examples are used only when their feature vectors match the served ones in size."""
    x_seed, _ = matrix(seed, config.feature)
    x_served, _ = matrix(served, config.feature)
    if x_seed is None or (x_served is not None and x_served.shape[1] != x_seed.shape[1]):
        return []
    return list(seed)


class Trainer:
    def __init__(
        self,
        redis: Any,
        config: PredictorConfig,
        stream: str = RECORDS_STREAM,
        key: str = MODEL_KEY,
        seed: Sequence[Example] | None = None,
    ):
        self.redis, self.config, self.stream, self.key = redis, config, stream, key
        self.seed = list(seed) if seed is not None else (_safe_seed() if config.use_seed_data else [])
        self._seen = 0
        self._stop = asyncio.Event()
        self._owner = uuid.uuid4().hex

    async def read_examples(self) -> list[Example]:
        """The newest `trainer_window` finished records, oldest first."""
        entries = await self.redis.xrevrange(self.stream, count=self.config.trainer_window)
        examples = (example_from_record(fields) for _, fields in reversed(entries))
        return [e for e in examples if e is not None]

    async def fit_once(self) -> ModelBundle | None:
        """Fits and publishes a bundle when there are enough records; returns it."""
        served = await self.read_examples()
        if len(served) < self.config.trainer_min_records:
            return None
        train, held_out = split_recent(served, self.config.holdout_fraction)
        train = compatible_seed(self.seed, served, self.config) + train
        c = self.config
        bundle = await asyncio.to_thread(
            fit_and_rank, train, held_out, c.feature, c.question_min_parse_rate, c.question_min_kendall
        )
        await publish(self.redis, bundle, self.key)
        log.info("predictor model v%d: choice=%s scores=%s", bundle.version, bundle.choice, bundle.scores)
        return bundle

    async def step(self) -> ModelBundle | None:
        """One period: refit if enough new records arrived and no other replica holds the lock."""
        total = int(await self.redis.xlen(self.stream))
        if total - self._seen < self.config.trainer_min_new:
            return None
        lock_ms = int(self.config.trainer_interval_s * 1000)
        if not await self.redis.set(f"{self.key}:trainer-lock", self._owner, nx=True, px=lock_ms):
            return None
        self._seen = total
        return await self.fit_once()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.step()
            except Exception:  # the trainer must outlive a bad batch of records or a Redis hiccup
                log.exception("predictor trainer step failed")
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.trainer_interval_s)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stop.set()


def _safe_seed() -> list[Example]:
    try:
        return load_prompt_set()
    except (OSError, KeyError, ValueError):
        return []


def start_trainer(redis: Any, settings: Any) -> tuple[Trainer, asyncio.Task]:
    """For the gateway lifespan: `trainer, task = start_trainer(...)`; at shutdown `trainer.stop()`."""
    trainer = Trainer(redis, PredictorConfig.from_settings(settings))
    return trainer, asyncio.create_task(trainer.run(), name="predictor-trainer")
