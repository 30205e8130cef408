"""OpenAI response bodies, chat and text completions, whole and streamed. Pure functions over plain data."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """What a finished (or finishing) generation reports beside its text."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    hidden_states: dict[str, Any] | None = None


@dataclass(frozen=True)
class Envelope:
    """id, created and model shared by every chunk of one response."""

    kind: str  # "chat" | "text"
    model: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def chat(self) -> bool:
        return self.kind == "chat"

    def head(self, obj: str) -> dict[str, Any]:
        prefix = "chatcmpl-" if self.chat else "cmpl-"
        return {"id": prefix + self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None}


def usage(out: Outcome) -> dict[str, Any]:
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": out.cached_tokens},
    }


def full_response(env: Envelope, text: str, out: Outcome) -> dict[str, Any]:
    if env.chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                  "logprobs": None, "finish_reason": out.finish_reason}
        body = env.head("chat.completion") | {"choices": [choice], "usage": usage(out)}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": out.finish_reason}
        body = env.head("text_completion") | {"choices": [choice], "usage": usage(out)}
    if out.hidden_states is not None:
        body["hidden_states"] = out.hidden_states
    return body


def chunk(env: Envelope, text: str | None, finish_reason: str | None = None, *, first: bool = False,
          with_usage_field: bool = False) -> dict[str, Any]:
    """One streamed chunk; chat's first chunk carries the role."""
    if env.chat:
        delta: dict[str, Any] = {}
        if first:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body = env.head("chat.completion.chunk") | {"choices": [choice]}
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
        body = env.head("text_completion") | {"choices": [choice]}
    if with_usage_field:
        body["usage"] = None
    return body


def usage_chunk(env: Envelope, out: Outcome) -> dict[str, Any]:
    """The last chunk under `stream_options.include_usage`: no choices, the usage."""
    obj = "chat.completion.chunk" if env.chat else "text_completion"
    body = env.head(obj) | {"choices": [], "usage": usage(out)}
    if out.hidden_states is not None:
        body["hidden_states"] = out.hidden_states
    return body


def sse(data: dict[str, Any] | str) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"
