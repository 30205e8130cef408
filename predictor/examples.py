"""Training examples from served records (Redis stream) and from the repo's measured prompt set."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from predictor.features import decode_hidden
from predictor.heuristic import heuristic_length

DATA = Path(__file__).parent / "data"
_FINISHED = ("stop", "length", "eos", "stop_sequence")


@dataclass(frozen=True)
class Example:
    output_tokens: int
    cap: float  # the request's token cap (inf when none)
    capped: bool  # stopped by the cap: the true length is only known to be >= output_tokens
    heuristic: float
    hidden: dict[str, Any] | None = None  # {"layers", "last", "mean"} as arrays
    asked: bool = False  # the question probe was sent
    guess: float | None = None  # its parsed answer
    kind: str | None = None  # prompt kind (repo prompt set only)
    id: str | None = None
    prompt_tokens: int | None = None
    # Sampling temperature the answer was served at (None: the engine's default). Lengths are fit
    # as served: a model serving temperature-1 traffic must predict temperature-1 lengths.
    temperature: float | None = None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def example_from_record(fields: dict[Any, Any]) -> Example | None:
    """One `skipjoin:records` entry; None for unfinished or unreadable ones."""
    f = {_text(k): _text(v) for k, v in fields.items()}
    if f.get("finish_reason") not in _FINISHED:
        return None
    try:
        features = json.loads(f.get("features") or "{}")
        output = int(float(f["output_tokens"]))
        cap = float(f["max_tokens"]) if f.get("max_tokens") not in (None, "", "None") else math.inf
        hidden = decode_hidden(features["hidden"]) if features.get("hidden") else None
        prompt_tokens = int(float(f["prompt_tokens"])) if f.get("prompt_tokens") else None
        guess = float(features["guess"]) if features.get("guess") is not None else None
        heuristic = float(features.get("heuristic") or 0.0) or 120.0
        temperature = float(f["temperature"]) if f.get("temperature") not in (None, "") else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    capped = f["finish_reason"] == "length"
    return Example(
        output_tokens=output,
        # A cut answer is only known to be >= what it produced (the engine's default cap may apply).
        cap=min(cap, output) if capped else cap,
        capped=capped,
        heuristic=heuristic,
        hidden=hidden,
        asked="guess_raw" in features,
        guess=guess,
        id=f.get("id"),
        prompt_tokens=prompt_tokens,
        temperature=temperature,
    )


def load_prompt_set(data: Path = DATA) -> list[Example]:
    """The repo's prompts with SmolLM2's measured lengths and hidden states (predictor.dataset)."""
    prompts = {r["id"]: r for r in map(json.loads, (data / "prompts.jsonl").read_text().splitlines())}
    lengths = [json.loads(line) for line in (data / "lengths.jsonl").read_text().splitlines() if line.strip()]
    z = np.load(data / "hidden.npz")
    row_of = {str(i): n for n, i in enumerate(z["ids"])}
    guesses = _load_guesses(data / "guesses.jsonl")
    layers = [int(x) for x in z["layers"]]
    out = []
    for r in sorted(lengths, key=lambda r: r["id"]):
        if r["id"] not in row_of:
            continue
        n = row_of[r["id"]]
        p = prompts[r["id"]]
        text = p.get("prompt") or "\n".join(m["content"] for m in p["messages"])
        mean = z["mean"][n].astype(float) if "mean" in z else None  # the engine's probe has no mean
        hidden = {"layers": layers, "last": z["last"][n].astype(float), "mean": mean}
        g = guesses.get(r["id"])
        out.append(
            Example(
                r["output_tokens"],
                float(r.get("max_tokens", 512)),
                r["finish_reason"] == "length",
                heuristic_length(text),
                hidden,
                asked=g is not None,
                guess=None if g is None else g.get("guess"),
                kind=r["kind"],
                id=r["id"],
                prompt_tokens=r.get("prompt_tokens"),
            )
        )
    return out


def _load_guesses(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}
