"""Predictors over the probes: `probe-hidden`, `probe-text` and `auto` differ only in which probes
they send and which model answers; all record what the probes saw in `Prediction.features`.

A probe is pure cost unless its answer changes the order: `auto` sends only the probes its chosen
model reads (others on a sampled share, so their models keep learning), and no predictor probes
while nothing waits in the gateway's queue (below saturation every request is served at once); then
the last prediction for the same prompt prefix answers, or the heuristic. A request that got no
prefill probe is flagged for inline prediction (`inline_predictor`): the engine predicts from its
own prefill, and the feature still reaches the training records.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from predictor.base import Prediction, PredictRequest
from predictor.bundle import HIDDEN_KINDS, ModelBundle
from predictor.config import PredictorConfig
from predictor.engine_input import engine_input
from predictor.features import encode_hidden
from predictor.heuristic import HeuristicPredictor, heuristic_length
from predictor.inline_predictor import inline_features
from predictor.prefix_memory import PrefixMemory
from predictor.probes import ProbeClient
from predictor.store import ModelStore

log = logging.getLogger(__name__)
_PROBE_ERRORS = (httpx.HTTPError, ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class Mode:
    prefill: bool  # send the prefill probe
    question: str  # "never", "always" or "sampled" (auto: always when the guess is the chosen model)
    answer: str  # "hidden", "guess" or "auto"


MODES = {
    "probe-hidden": Mode(prefill=True, question="never", answer="hidden"),
    "probe-text": Mode(prefill=False, question="always", answer="guess"),
    "auto": Mode(prefill=True, question="sampled", answer="auto"),
}


class ProbePredictor:
    def __init__(
        self,
        name: str,
        probes: ProbeClient,
        store: ModelStore,
        config: PredictorConfig,
        rng: random.Random | None = None,
        queue_depth: Callable[[], Awaitable[int]] | None = None,
        memory: PrefixMemory | None = None,
    ):
        """`queue_depth`: requests waiting in the gateway's queue (None: always probe);
        `memory`: the last probed prediction per prompt prefix (None: none kept)."""
        if name not in MODES:
            raise ValueError(f"unknown probe predictor {name!r}; known: {sorted(MODES)}")
        self.name, self.mode = name, MODES[name]
        self.probes, self.store, self.config = probes, store, config
        self.rng = rng or random.Random()
        self.queue_depth, self.memory = queue_depth, memory
        self.fallback = HeuristicPredictor()

    async def predict(self, req: PredictRequest) -> Prediction:
        bundle = await self.store.current()
        version = -1 if bundle is None else bundle.version
        features: dict[str, Any] = {
            "heuristic": heuristic_length(req.prompt_text),
            "model_version": None if bundle is None else bundle.version,
            "input": engine_input(req).kind,  # which path the feature was read on (chat or completions)
        }
        send_prefill, send_question = await self._probes_to_send(bundle, features)
        # Both probes share one time budget: the gateway bounds the whole call by probe_timeout_s.
        deadline = time.monotonic() + self.config.probe_timeout_s
        x = await self._prefill(req, features, deadline) if send_prefill else None
        if "hidden" not in features and self.config.inline_unprobed:
            features.update(inline_features(req, self.config, self.memory))
        guess = await self._question(req, features, deadline) if send_question else None
        answer = self._answer(bundle, x, guess)
        if answer is not None and self.memory is not None:
            await self.memory.put(req.prompt_text, version, *answer[0])
        if answer is None and "probe_skipped" in features and self.memory is not None:
            known = await self.memory.get(req.prompt_text, version)
            answer = None if known is None else (known, f"{self.name}:prefix")
        if answer is None:
            base = await self.fallback.predict(req)
            return Prediction(base.length, base.p90, "heuristic", features)
        (length, p90), source = answer
        if req.max_tokens is not None:
            length, p90 = min(length, req.max_tokens), min(p90, req.max_tokens)
        return Prediction(float(length), float(max(p90, length)), source, features)

    async def _probes_to_send(
        self, bundle: ModelBundle | None, features: dict[str, Any]
    ) -> tuple[bool, bool]:
        """(prefill, question): what the answering model reads, unless the queue is empty; plus a
        sampled share of each probe this predictor sends at all, to keep every model learning."""
        prefill, question = self._needed(bundle)
        if (prefill or question) and self.queue_depth is not None and await self.queue_depth() == 0:
            features["probe_skipped"] = "idle"
            prefill = question = False
        prefill = prefill or (self.mode.prefill and self.rng.random() < self.config.prefill_sample_rate)
        sampled = self.mode.question != "never" and self.rng.random() < self.config.question_sample_rate
        return prefill, question or sampled

    def _needed(self, bundle: ModelBundle | None) -> tuple[bool, bool]:
        if self.mode.answer != "auto":
            return self.mode.prefill, self.mode.question == "always"
        choice = "heuristic" if bundle is None else bundle.choice
        return choice in HIDDEN_KINDS, choice == "guess"

    async def _prefill(
        self, req: PredictRequest, features: dict[str, Any], deadline: float
    ) -> np.ndarray | None:
        try:
            res = await self.probes.prefill(req, _left(deadline))
        except _PROBE_ERRORS as e:
            features["prefill_error"] = type(e).__name__
            log.debug("prefill probe failed: %r", e)
            return None
        features.update(
            prompt_tokens=res.prompt_tokens,
            probe_cached_tokens=res.cached_tokens,
            prefill_probe_s=round(res.elapsed_s, 4),
        )
        if res.hidden is None:
            return None
        features["hidden"] = encode_hidden(res.hidden)
        return self.config.feature.vector(res.hidden)

    async def _question(self, req: PredictRequest, features: dict[str, Any], deadline: float) -> float | None:
        if _left(deadline) < 0.01:
            features["question_error"] = "NoTimeLeft"
            return None
        try:
            res = await self.probes.question(req, _left(deadline))
        except _PROBE_ERRORS as e:
            features["question_error"] = type(e).__name__
            log.debug("question probe failed: %r", e)
            return None
        features.update(guess_raw=res.answer[:40], guess=res.guess, question_probe_s=round(res.elapsed_s, 4))
        return res.guess

    def _answer(
        self, bundle: ModelBundle | None, x: np.ndarray | None, guess: float | None
    ) -> tuple[tuple[float, float], str] | None:
        if bundle is None:
            return None
        use_guess = guess is not None and bundle.guess_usable(
            self.config.question_min_parse_rate, self.config.question_min_kendall
        )
        hidden = bundle.predict_hidden(x) if x is not None else None
        hidden_source = f"{self.name}:{bundle.hidden_model().kind}" if hidden else ""
        if self.mode.answer == "guess" or (self.mode.answer == "auto" and bundle.choice == "guess"):
            if use_guess:
                length, p90 = bundle.guess.predict(np.array([guess]))
                return (float(length[0]), float(p90[0])), f"{self.name}:guess"
            return (hidden, hidden_source) if hidden else None
        if self.mode.answer == "auto" and bundle.choice == "heuristic":
            return None
        return (hidden, hidden_source) if hidden else None


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())
