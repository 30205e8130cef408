"""OpenAI-compatible request bodies shared by the gateway and the built-in engine.

One module for the messages between gateway and engine: the OpenAI fields plus skipjoin's
extensions (`priority`, hidden-state and digit-constrained probe options).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TOKENS = (1 << 31) - 1  # past any context; keeps the forced prediction a finite number
MAX_USER = 256  # characters: the tenant name, copied into every record and usage key


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    # OpenAI allows a list of content parts; only text parts are used.
    content: str | list[dict[str, Any]] | None = None

    @field_validator("content")
    @classmethod
    def _text_parts(cls, content):
        if isinstance(content, list):
            for i, part in enumerate(content):
                if not isinstance(part.get("text", ""), str):
                    raise ValueError(f"content part {i}: text must be a string")
        return content

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.get("text", "") for p in self.content if isinstance(p, dict))
        return self.content or ""


class SamplingFields(BaseModel):
    """Fields common to chat and text completions."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    user: str | None = Field(default=None, max_length=MAX_USER)
    # skipjoin / SGLang / vLLM: lower value runs earlier. The gateway sends the predicted output
    # length in tokens, so the engine's skip-join entry level follows from it.
    priority: int | None = None
    # Predictor probes (built-in engine): hidden state of these layers at the last prompt token
    # and the mean over the prompt; `max_tokens: 0` makes the request prefill-only.
    return_hidden_states: bool = False
    hidden_layers: list[int] | None = None
    # Constrain decoding to digits (the question probe).
    digits_only: bool = False
    ignore_eos: bool = False
    # vLLM's per-request extension fields, passed through without the gateway's own (`skipjoin_*`).
    vllm_xargs: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self):
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop: at most 4 sequences")
        return self

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def prompt_text(self) -> str:
        return "\n".join(f"{m.role}: {m.text()}" for m in self.messages)


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    echo: bool = False

    @model_validator(mode="after")
    def _one_prompt(self):
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("prompt: exactly one prompt per request is supported")
        return self

    def token_limit(self) -> int | None:
        return self.max_tokens

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | int | None = None) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
