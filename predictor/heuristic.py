"""Cold-start predictor from prompt features: explicit length requests and the kind of task."""

from __future__ import annotations

import re

from predictor.base import Prediction, PredictRequest

_WORDS_TO_TOKENS = 1.35
_EXPLICIT = re.compile(
    r"\b(?:in|about|around|under|within|at most|exactly)?\s*(\d{1,5})\s*(words?|sentences?|"
    r"paragraphs?|lines?|items?|points?|bullets?|tokens?)\b",
    re.I,
)
_UNIT_TOKENS = {
    "word": _WORDS_TO_TOKENS,
    "token": 1.0,
    "sentence": 22.0,
    "line": 14.0,
    "item": 14.0,
    "point": 18.0,
    "bullet": 18.0,
    "paragraph": 90.0,
}
# (pattern, typical length in tokens): first match wins.
_KINDS: list[tuple[re.Pattern[str], float]] = [
    (
        re.compile(
            r"\b(one|single|1)[ -]word\b|\byes or no\b|\btrue or false\b|\bjust the (number|name)\b", re.I
        ),
        4,
    ),
    (re.compile(r"\b(translate|translation)\b", re.I), 40),
    (
        re.compile(
            r"\b(essay|story|article|report|blog post|in detail|detailed|comprehensive|step[- ]by[- ]step)\b",
            re.I,
        ),
        450,
    ),
    (re.compile(r"\b(code|function|program|script|implement|class|python|javascript|sql)\b", re.I), 260),
    (re.compile(r"\b(list|enumerate|steps|ways|tips|examples|compare|pros and cons)\b", re.I), 220),
    (re.compile(r"\b(explain|describe|why|how does|how do)\b", re.I), 200),
    (re.compile(r"\b(what is|who is|when|where|which|define|capital of)\b", re.I), 60),
    (re.compile(r"^\s*(hi|hello|hey|thanks|thank you)\b", re.I), 25),
]
_DEFAULT = 120.0


def heuristic_length(prompt_text: str) -> float:
    """A length guess in tokens from the prompt text alone."""
    m = _EXPLICIT.search(prompt_text)
    if m:
        unit = m.group(2).lower().rstrip("s")
        return max(2.0, int(m.group(1)) * _UNIT_TOKENS[unit])
    last = prompt_text[-2000:]
    for pattern, length in _KINDS:
        if pattern.search(last):
            return length
    return _DEFAULT


class HeuristicPredictor:
    name = "heuristic"

    async def predict(self, req: PredictRequest) -> Prediction:
        length = heuristic_length(req.prompt_text)
        p90 = length * 2.5
        if req.max_tokens is not None:
            length, p90 = min(length, req.max_tokens), min(p90, req.max_tokens)
        return Prediction(length=length, p90=p90, source=self.name)
