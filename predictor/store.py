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
        self.rejected: dict[str, Any] | None = None  # the last published version refused, and why
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
        """Loads a newer published bundle, if any; a broken one is logged once, reported in
        `rejected`, and the last good one kept."""
        raw_version = await self.redis.get(f"{self.key}:version")
        raw = None if raw_version is None else await self.redis.get(self.key)
        bundle, self.rejected = newer_bundle(raw_version, raw, self.version, self.rejected)
        if bundle is None:
            return False
        self.bundle = bundle
        return True


def newer_bundle(raw_version: Any, raw: Any, current: int, rejected: dict[str, Any] | None
                 ) -> tuple[ModelBundle | None, dict[str, Any] | None]:
    """(the published bundle if newer than `current` and whole, else None; the refusal to report).
    Shared by gateways and engines: both keep their last good bundle when the published one is bad."""
    try:
        version = int(raw_version) if raw_version is not None else None
    except (TypeError, ValueError):
        version = None
    if raw_version is not None and version is None:
        return None, _refused(rejected, str(raw_version), "the model version is not an integer")
    if version is None or version <= current or raw is None:
        return None, rejected
    if rejected is not None and rejected["version"] == version:
        return None, rejected  # refused already: not parsed (nor logged) again
    try:
        bundle = ModelBundle.from_json(raw)
    except ValueError as exc:
        return None, _refused(rejected, version, str(exc))
    if bundle.version <= current:
        return None, rejected
    return bundle, None


def _refused(rejected: dict[str, Any] | None, version: Any, error: str) -> dict[str, Any]:
    if rejected is None or rejected["version"] != version:
        log.error("predictor model version %s refused, the last good one kept: %s", version, error)
    return {"version": version, "error": error}
