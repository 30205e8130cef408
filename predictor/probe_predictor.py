"""Predictors over the probes: `probe-hidden`, `probe-text` and `auto` differ only in which probes
they send and which model answers; all record what the probes saw in `Prediction.features`."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from predictor.base import Prediction, PredictRequest
from predictor.bundle import ModelBundle
from predictor.config import PredictorConfig
from predictor.features import encode_hidden
from predictor.heuristic import HeuristicPredictor, heuristic_length
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
    ):
        if name not in MODES:
            raise ValueError(f"unknown probe predictor {name!r}; known: {sorted(MODES)}")
        self.name, self.mode = name, MODES[name]
        self.probes, self.store, self.config = probes, store, config
        self.rng = rng or random.Random()
        self.fallback = HeuristicPredictor()

    async def predict(self, req: PredictRequest) -> Prediction:
        bundle = await self.store.current()
        features: dict[str, Any] = {
            "heuristic": heuristic_length(req.prompt_text),
            "model_version": None if bundle is None else bundle.version,
        }
        # Both probes share one time budget: the gateway bounds the whole call by probe_timeout_s.
        deadline = time.monotonic() + self.config.probe_timeout_s
        x = await self._prefill(req, features, deadline) if self.mode.prefill else None
        guess = await self._question(req, features, deadline) if self._ask(bundle) else None
        answer = self._answer(bundle, x, guess)
        if answer is None:
            base = await self.fallback.predict(req)
            return Prediction(base.length, base.p90, "heuristic", features)
        (length, p90), source = answer
        if req.max_tokens is not None:
            length, p90 = min(length, req.max_tokens), min(p90, req.max_tokens)
        return Prediction(float(length), float(max(p90, length)), source, features)

    def _ask(self, bundle: ModelBundle | None) -> bool:
        if self.mode.question == "sampled":
            chosen = bundle is not None and bundle.choice == "guess"
            return chosen or self.rng.random() < self.config.question_sample_rate
        return self.mode.question == "always"

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
