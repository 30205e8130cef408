"""Online learning: refit from the gateway's finished-request records and publish through Redis.

Every gateway replica may run a trainer; a Redis lock lets one of them fit per interval. Fitting
runs in a worker thread so the event loop keeps serving. New records are counted from the id of the
newest one fitted (a Redis key all replicas share), never from the stream's length: the gateway trims
the stream at a cap, so past it the length stands still while records keep arriving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from predictor.bundle import ModelBundle
from predictor.config import PredictorConfig
from predictor.examples import Example, example_from_record, load_prompt_set
from predictor.fit import fit_and_rank, matrix
from predictor.store import MODEL_KEY, load_seed, publish

RECORDS_STREAM = "skipjoin:records"
log = logging.getLogger(__name__)


def split_recent(
    served: Sequence[Example], fraction: float, minimum: int = 1
) -> tuple[list[Example], list[Example]]:
    """The newest `fraction` (at least `minimum`, at most half) is held out: the ranking should hold
    on recent traffic."""
    n_hold = max(1, min(max(int(round(len(served) * fraction)), minimum), len(served) // 2))
    return list(served[:-n_hold]), list(served[-n_hold:])


def recency_weights(n: int, half_life: float) -> np.ndarray:
    """One weight per example, oldest first: the newest weighs 1, each `half_life` older half as much."""
    return 0.5 ** ((n - 1 - np.arange(n)) / half_life)


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
        initial_choice: str = "heuristic",
    ):
        self.redis, self.config, self.stream, self.key = redis, config, stream, key
        self.seed = list(seed) if seed is not None else (_safe_seed() if config.use_seed_data else [])
        self.initial_choice = initial_choice  # what gateways serve before anything is published
        self.cursor_key = f"{key}:trained-id"
        self._stop = asyncio.Event()
        self._owner = uuid.uuid4().hex

    async def read_window(self) -> tuple[list[Example], bytes | None]:
        """The newest `trainer_window` finished records, oldest first, and the newest entry's id."""
        entries = await self.redis.xrevrange(self.stream, count=self.config.trainer_window)
        examples = (example_from_record(fields) for _, fields in reversed(entries))
        return [e for e in examples if e is not None], (entries[0][0] if entries else None)

    async def read_examples(self) -> list[Example]:
        return (await self.read_window())[0]

    async def new_records(self) -> int:
        """Entries added since the newest one fitted, counted up to `trainer_min_new`."""
        cursor = await self.redis.get(self.cursor_key)
        if cursor is None:
            return int(await self.redis.xlen(self.stream))
        after = await self.redis.xrange(self.stream, min=cursor, count=self.config.trainer_min_new + 1)
        return len([entry_id for entry_id, _ in after if entry_id != cursor])

    async def incumbent(self) -> str:
        raw = await self.redis.get(self.key)
        if raw is None:
            return self.initial_choice
        try:
            return str(json.loads(raw).get("choice") or self.initial_choice)
        except (ValueError, AttributeError):
            return self.initial_choice

    async def fit_once(self) -> ModelBundle | None:
        """Fits and publishes a bundle when there are enough records; returns it."""
        served, newest = await self.read_window()
        c = self.config
        if len(served) < c.trainer_min_records:
            return None
        train, held_out = split_recent(served, c.holdout_fraction, c.holdout_min)
        train = compatible_seed(self.seed, served, c) + train
        weights = recency_weights(len(train) + len(held_out), c.trainer_half_life)
        incumbent = await self.incumbent()
        bundle = await asyncio.to_thread(fit_and_rank, train, held_out, c.feature, c, incumbent, weights)
        await publish(self.redis, bundle, self.key)
        if newest is not None:
            await self.redis.set(self.cursor_key, newest)
        log.info(
            "predictor model v%d: choice=%s (confidence %.2f on %d held out) scores=%s",
            bundle.version,
            bundle.choice,
            bundle.confidence,
            bundle.holdout_n,
            bundle.scores,
        )
        return bundle

    async def step(self) -> ModelBundle | None:
        """One period: refit if enough new records arrived and no other replica holds the lock."""
        if await self.new_records() < self.config.trainer_min_new:
            return None
        lock_ms = int(self.config.trainer_interval_s * 1000)
        if not await self.redis.set(f"{self.key}:trainer-lock", self._owner, nx=True, px=lock_ms):
            return None
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
    config = PredictorConfig.from_settings(settings)
    seed_model = load_seed()
    initial = seed_model.choice if seed_model is not None else "heuristic"
    trainer = Trainer(redis, config, initial_choice=initial)
    return trainer, asyncio.create_task(trainer.run(), name="predictor-trainer")
