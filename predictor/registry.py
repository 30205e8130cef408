"""Predictors chosen by name (settings.predictor)."""

from __future__ import annotations

from typing import Any

from predictor.base import Predictor
from predictor.heuristic import HeuristicPredictor


def build_predictor(name: str, **deps: Any) -> Predictor:
    """`deps` carries what probe-based predictors need (redis client, http client, settings)."""
    if name == "heuristic":
        return HeuristicPredictor()
    raise ValueError(f"unknown predictor {name!r}; known: heuristic")
