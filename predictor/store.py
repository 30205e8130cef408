"""Publish fitted model bundles through Redis; every gateway replica picks up newer versions.

Two keys: `<prefix>:version` (an INCR counter, cheap to poll) and `<prefix>` (the bundle's JSON,
which carries its own version). Bundles are plain JSON (arrays base64-encoded), never pickle.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from predictor.bundle import ModelBundle

MODEL_KEY = "skipjoin:predictor:model"
SEED_MODEL = Path(__file__).parent / "data" / "initial_model.json"
log = logging.getLogger(__name__)


async def publish(redis: Any, bundle: ModelBundle, key: str = MODEL_KEY) -> int:
    """Store `bundle` as the newest version; returns the version it was given."""
    bundle.version = int(await redis.incr(f"{key}:version"))
    await redis.set(key, bundle.to_json())
    return bundle.version


def load_seed(path: Path = SEED_MODEL) -> ModelBundle | None:
    """The model shipped with the repo (fitted on its prompt set), version 0."""
    if not path.exists():
        return None
    bundle = ModelBundle.from_json(path.read_text())
    bundle.version = 0
    return bundle


class ModelStore:
    """The current bundle of one gateway replica, refreshed from Redis at most every `refresh_s`."""

    def __init__(
        self, redis: Any | None, refresh_s: float = 5.0, key: str = MODEL_KEY, seed: ModelBundle | None = None
    ):
        self.redis, self.refresh_s, self.key = redis, refresh_s, key
        self.bundle = seed
        self._checked_at = float("-inf")

    @property
    def version(self) -> int:
        return -1 if self.bundle is None else self.bundle.version

    async def current(self) -> ModelBundle | None:
        now = time.monotonic()
        if self.redis is not None and now - self._checked_at >= self.refresh_s:
            self._checked_at = now
            await self.refresh()
        return self.bundle

    async def refresh(self) -> bool:
        """Loads a newer published bundle, if any; a broken one is logged and skipped."""
        raw_version = await self.redis.get(f"{self.key}:version")
        if raw_version is None or int(raw_version) <= self.version:
            return False
        raw = await self.redis.get(self.key)
        if raw is None:
            return False
        try:
            bundle = ModelBundle.from_json(raw)
        except (ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable predictor model: %s", e)
            return False
        if bundle.version <= self.version:
            return False
        self.bundle = bundle
        return True
