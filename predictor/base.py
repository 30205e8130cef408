"""The `Predictor` contract: how long will this request's answer be?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class PredictRequest:
    """What a predictor may look at before the request runs."""

    prompt_text: str
    # Chat messages as plain dicts ({"role", "content"}); None for text completions.
    messages: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    model: str | None = None
    # Replica the real request will probably go to (probes go there for prefix reuse).
    replica_url: str | None = None


@dataclass(frozen=True)
class Prediction:
    length: float  # predicted output tokens (point estimate, already capped by max_tokens)
    p90: float  # 90th percentile of the predicted length
    source: str  # which predictor produced it
    # Anything the probes learned, kept for the calibration record (hidden state, raw guess).
    features: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Predictor(Protocol):
    name: str

    async def predict(self, req: PredictRequest) -> Prediction: ...
