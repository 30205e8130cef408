"""Inline prediction in the engine: a flagged request's own prefill feature, the published model,
a predicted length for the policy, and the feature back to the gateway for training.

The model is the gateways' (`predictor.store`), polled by version on a thread of its own; before
any is published, or without Redis, the shipped seed model answers. Only a bundle whose choice is
a hidden-state model predicts (a `heuristic` or `guess` choice leaves the gateway's estimate as
it is). Redis writes go through a bounded queue to a writer thread: the scheduler never waits on
Redis, and a full queue drops results (a training example lost, never a request).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import redis

from predictor.bundle import HIDDEN_KINDS, ModelBundle
from predictor.config import PredictorConfig
from predictor.features import encode_hidden
from predictor.prefix_memory import memory_entry, memory_key
from predictor.store import MODEL_KEY, load_seed, newer_bundle
from wire.xargs import INLINE_RESULT, INLINE_TTL_S, PREDICT, PREDICT_PREFIX, PROBE_RESULT, inline_key

if TYPE_CHECKING:
    from engine.vllm.hidden_meta import InlineFeature

log = logging.getLogger("skipjoin.engine.inline")
REFRESH_S = PredictorConfig().refresh_s  # as often as a gateway looks for a newer model
MEMORY_TTL_S = PredictorConfig().cache_ttl_s
OUTBOX_MAX = 4096
# Keys the engine writes are named by the gateway (job ids, 12-byte prefix hashes): anything else
# names no key, so a request cannot point the engine's writes outside those two key families.
_JOB = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEX24 = re.compile(r"[0-9a-f]{24}")


@dataclass(frozen=True)
class InlineResult:
    predicted: float | None  # None: the model in use does not read the hidden state
    p90: float | None
    version: int  # model version (-1: none)
    # Before the request's own max_tokens cap: what the prefix memory keeps, since the next
    # request with this prefix may allow a longer answer.
    uncapped: float | None = None
    uncapped_p90: float | None = None


class EngineModel:
    """The current model bundle; `refresh` loads a newer published one (thread-safe swap)."""

    def __init__(self, redis_url: str | None, key: str = MODEL_KEY, seed: ModelBundle | None = None):
        self.bundle = seed if seed is not None else load_seed()
        self.key = key
        self.rejected: dict[str, Any] | None = None
        self.r = None if not redis_url else redis.Redis.from_url(
            redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)

    @property
    def version(self) -> int:
        return -1 if self.bundle is None else self.bundle.version

    def predict(self, hidden: dict[str, Any], max_tokens: int | None) -> InlineResult:
        bundle = self.bundle
        if bundle is None or bundle.choice not in HIDDEN_KINDS:
            return InlineResult(None, None, self.version)
        x = bundle.feature.vector(hidden)
        out = None if x is None else bundle.predict_hidden(x)
        if out is None:
            return InlineResult(None, None, bundle.version)
        full, full_p90 = float(out[0]), float(max(out))
        length, p90 = full, full_p90
        if max_tokens is not None:
            length, p90 = min(length, max_tokens), min(p90, max_tokens)
        return InlineResult(float(length), float(max(p90, length)), bundle.version, full, full_p90)

    def refresh(self) -> bool:
        """Take a newer published bundle; a bad one is refused (`rejected`), the last good one kept."""
        if self.r is None:
            return False
        raw_version = self.r.get(f"{self.key}:version")
        raw = None if raw_version is None else self.r.get(self.key)
        bundle, self.rejected = newer_bundle(raw_version, raw, self.version, self.rejected)
        if bundle is None:
            return False
        self.bundle = bundle
        log.info("inline prediction now uses model version %d (%s)", bundle.version, bundle.choice)
        return True


class InlineOutbox:
    """Writes each inline result (feature, prediction, prefix-memory entry) to Redis off-thread."""

    def __init__(self, redis_url: str):
        self.r = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.q: queue.Queue[tuple[dict[str, Any], dict[str, Any], InlineResult]] = queue.Queue(OUTBOX_MAX)
        self.dropped = 0

    def send(self, args: dict[str, Any], hidden: dict[str, Any], result: InlineResult) -> None:
        try:
            self.q.put_nowait((args, hidden, result))
        except queue.Full:
            self.dropped += 1

    def drain(self, block: bool = True, timeout: float = 0.5) -> int:
        """Write what is queued in one pipeline; returns how many results it wrote."""
        try:
            batch = [self.q.get(block, timeout)]
        except queue.Empty:
            return 0
        while len(batch) < 256:
            try:
                batch.append(self.q.get_nowait())
            except queue.Empty:
                break
        pipe = self.r.pipeline(transaction=False)
        for args, hidden, result in batch:
            write(pipe, args, hidden, result)
        pipe.execute()
        return len(batch)


def write(pipe: Any, args: dict[str, Any], hidden: dict[str, Any], result: InlineResult) -> None:
    job = str(args.get(PREDICT) or "")
    if _JOB.fullmatch(job) and job not in ("1", "True", "true"):  # a bare flag names no job
        key = inline_key(job)
        fields = {"hidden": json.dumps(encode_hidden(hidden)), "result": json.dumps(asdict(result))}
        pipe.hset(key, mapping=fields)
        pipe.expire(key, INLINE_TTL_S)
    prefix = str(args.get(PREDICT_PREFIX) or "")
    length = result.uncapped if result.uncapped is not None else result.predicted
    p90 = result.uncapped_p90 if result.uncapped_p90 is not None else result.p90
    if _HEX24.fullmatch(prefix) and length is not None and p90 is not None:
        pipe.set(memory_key(prefix, result.version), memory_entry(length, p90), px=int(MEMORY_TTL_S * 1000))


def answer_payload(hidden: dict[str, Any], result: InlineResult, with_hidden: bool) -> dict[str, Any]:
    """What a non-streamed answer carries in `kv_transfer_params`: the prediction, and the feature
    itself only when there is no Redis to take it to the gateway."""
    out: dict[str, Any] = {INLINE_RESULT: asdict(result)}
    if with_hidden:
        out[PROBE_RESULT] = hidden
    return out


class InlinePredictions:
    """The scheduler's one handle: the model, the outbox and their threads."""

    def __init__(self, redis_url: str | None, refresh_s: float = REFRESH_S):
        self.model = EngineModel(redis_url)
        self.outbox = InlineOutbox(redis_url) if redis_url else None
        self.refresh_s = refresh_s
        self._stop = threading.Event()

    def start(self) -> None:
        if self.model.r is not None:
            threading.Thread(target=self._refresh_loop, name="skipjoin-model", daemon=True).start()
        if self.outbox is not None:
            threading.Thread(target=self._write_loop, name="skipjoin-inline", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def handle(self, feature: InlineFeature, connector: Any) -> InlineResult:
        """Predict from one captured feature; its answer and the gateway get the result."""
        result = self.model.predict(feature.hidden, feature.request.max_tokens)
        connector.annotate(feature, answer_payload(feature.hidden, result, self.outbox is None))
        if self.outbox is not None:
            self.outbox.send(feature.args, feature.hidden, result)
        return result

    def _refresh_loop(self) -> None:
        while True:
            try:
                self.model.refresh()
            except (redis.RedisError, OSError) as exc:
                log.warning("model refresh: %s", exc)
            except Exception:  # noqa: BLE001 - the thread must outlive any bundle; the last good one stays
                log.exception("model refresh")
            if self._stop.wait(self.refresh_s):
                return

    def _write_loop(self) -> None:
        assert self.outbox is not None
        while not self._stop.is_set():
            try:
                self.outbox.drain()
            except (redis.RedisError, OSError) as exc:
                log.warning("inline results not written: %s", exc)
                self._stop.wait(1.0)
