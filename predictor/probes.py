"""The two probes, sent to the replica the real request will use, at top priority.

- Prefill probe: the real request's own text (same endpoint, same messages or prompt, so the engine
  sees the same tokens), `max_tokens: 1` (vLLM's least), flagged in `vllm_xargs`; the engine returns
  layer k's hidden state at the last prompt token in `kv_transfer_params`. Its KV stays in the
  engine's prefix cache, so the real request's prefill that follows is nearly free.
- Question probe: the conversation plus "how many tokens would your response be?", decoding
  constrained to digits, a few tokens at most.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.engine_input import engine_input
from predictor.features import hidden_from_response
from predictor.parse import parse_length_guess
from wire.xargs import PROBE, PROBE_LAYER

PROBE_PRIORITY = 0  # lower runs first: probes overtake every real request


@dataclass(frozen=True)
class PrefillResult:
    hidden: dict[str, Any] | None  # {"layers", "last", "mean"}
    prompt_tokens: int | None
    cached_tokens: int | None
    elapsed_s: float


@dataclass(frozen=True)
class QuestionResult:
    answer: str
    guess: float | None  # parsed tokens, None when the answer held no usable number
    elapsed_s: float


def _base_body(req: PredictRequest) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"stream": False, "priority": PROBE_PRIORITY, "temperature": 0.0}
    if req.model:
        body["model"] = req.model
    given = engine_input(req)  # the real request's own input: the one feature path
    return given.path, body | given.body()


def prefill_body(req: PredictRequest, layers: list[int]) -> tuple[str, dict[str, Any]]:
    path, body = _base_body(req)
    layer: int | list[int] = layers[0] if len(layers) == 1 else list(layers)
    # vLLM (skipjoin's engine) reads `vllm_xargs`; SGLang returns its launch-time aux layer at the
    # last prompt token for `return_hidden_states: "last"`. Each ignores the other's field.
    return path, body | {"max_tokens": 1, "vllm_xargs": {PROBE: 1, PROBE_LAYER: layer},
                         "return_hidden_states": "last"}


def question_body(req: PredictRequest, question: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
    path, body = _base_body(req)
    if req.messages is not None:
        body["messages"] = body["messages"] + [{"role": "user", "content": question}]
    else:
        body["prompt"] = f"{req.prompt_text}\n\n{question}\n"
    # vLLM's structured outputs (xgrammar) keep the answer to digits.
    return path, body | {"max_tokens": max_tokens, "structured_outputs": {"regex": "[0-9]{1,5}"}}


def answer_text(body: dict[str, Any]) -> str:
    choice = (body.get("choices") or [{}])[0]
    if "message" in choice:
        return (choice["message"] or {}).get("content") or ""
    return choice.get("text") or ""


class ProbeClient:
    """Sends probes over a shared `httpx.AsyncClient`, each bounded by `probe_timeout_s`."""

    def __init__(self, http: httpx.AsyncClient, config: PredictorConfig):
        self.http, self.config = http, config

    def url_for(self, req: PredictRequest) -> str:
        url = req.replica_url or (self.config.engine_urls[0] if self.config.engine_urls else None)
        if url is None:
            raise ValueError("no replica to probe: PredictRequest.replica_url and engine_urls are empty")
        return url.rstrip("/")

    async def _post(
        self, req: PredictRequest, path: str, body: dict[str, Any], timeout: float | None
    ) -> tuple[dict[str, Any], float]:
        t0 = time.perf_counter()
        timeout = self.config.probe_timeout_s if timeout is None else timeout
        resp = await self.http.post(self.url_for(req) + path, json=body, timeout=timeout)
        resp.raise_for_status()
        return resp.json(), time.perf_counter() - t0

    async def prefill(
        self, req: PredictRequest, timeout: float | None = None, layers: list[int] | None = None
    ) -> PrefillResult:
        layers = layers or [self.config.feature.layer]
        data, elapsed = await self._post(req, *prefill_body(req, layers), timeout)
        usage = data.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        return PrefillResult(hidden_from_response(data, layers), usage.get("prompt_tokens"), cached, elapsed)

    async def question(self, req: PredictRequest, timeout: float | None = None) -> QuestionResult:
        path, body = question_body(req, self.config.question, self.config.question_max_tokens)
        data, elapsed = await self._post(req, path, body, timeout)
        text = answer_text(data)
        return QuestionResult(text, parse_length_guess(text), elapsed)
