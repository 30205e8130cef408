"""Synthetic served records for trainer tests: plain dicts as the gateway writes them to Redis."""

from __future__ import annotations

import json

import numpy as np

from predictor.features import encode_hidden

LAYER = 14


def record(
    i: int,
    output: int,
    x: np.ndarray | None,
    guess: float | None = None,
    heuristic: float = 120.0,
    cap: int = 512,
    asked: bool | None = None,
) -> dict[str, str]:
    features: dict = {"heuristic": heuristic}
    if x is not None:
        features["hidden"] = encode_hidden({"layers": [LAYER], "last": [x.tolist()], "mean": [x.tolist()]})
    if asked or (asked is None and guess is not None):
        features.update(guess_raw=str(guess), guess=guess)
    finish = "length" if output >= cap else "stop"
    return {
        "id": f"r{i}",
        "model": "m",
        "prompt_tokens": "20",
        "output_tokens": str(min(output, cap)),
        "max_tokens": str(cap),
        "finish_reason": finish,
        "features": json.dumps(features),
    }


def synthetic(n: int, informative: str, seed: int = 0, dim: int = 16) -> list[dict[str, str]]:
    """`informative`: which input carries the length — "hidden", "guess" or "heuristic"."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    x = rng.normal(size=(n, dim))
    z = 3.5 + 0.8 * (x @ w) / np.sqrt(dim) + rng.normal(scale=0.25, size=n)
    lengths = np.clip(np.expm1(z), 1, 2000).astype(int)
    noise = rng.normal(size=(n, dim))
    rows = []
    for i in range(n):
        hidden = x[i] if informative == "hidden" else noise[i]
        guess = float(lengths[i] * 3 + 5) if informative == "guess" else float(rng.integers(1, 999))
        heuristic = float(lengths[i]) if informative == "heuristic" else float(rng.integers(4, 450))
        rows.append(record(i, int(lengths[i]), hidden, guess, heuristic))
    return rows
