"""The one text the engine sees for a request, from which the hidden-state feature is read: by the
dataset, by the live prefill probe, and so by the training records.

Chat requests are templated by the engine (their messages go in as they are); `/v1/completions`
prompts go in raw. A model fit on templated prompts reads another feature from a raw prompt, so
every producer of a feature builds its request through here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from predictor.base import PredictRequest

ENDPOINTS = ("chat", "completions")


@dataclass(frozen=True)
class EngineInput:
    messages: tuple[dict[str, Any], ...] | None  # chat: templated by the engine
    prompt: str | None  # completions: the raw text

    @property
    def kind(self) -> str:
        return "chat" if self.messages is not None else "completions"

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.messages is not None else "/v1/completions"

    def body(self) -> dict[str, Any]:
        """The request body's input part, as the client's own request carries it."""
        if self.messages is not None:
            return {"messages": [dict(m) for m in self.messages]}
        return {"prompt": self.prompt}

    def token_ids(self, tokenizer: Any) -> list[int]:
        """The prompt tokens the engine runs, as vLLM's OpenAI server builds them: the chat template
        with the generation prompt (no further special tokens), or the raw prompt encoded."""
        if self.messages is not None:
            out = tokenizer.apply_chat_template(
                [dict(m) for m in self.messages], add_generation_prompt=True, tokenize=True
            )
            return list(out["input_ids"] if hasattr(out, "keys") else out)
        return list(tokenizer(self.prompt)["input_ids"])


def engine_input(req: PredictRequest) -> EngineInput:
    if req.messages is not None:
        return EngineInput(tuple(req.messages), None)
    return EngineInput(None, req.prompt_text)


def row_request(row: dict[str, Any]) -> PredictRequest:
    """A prompt-set row as the request it stands for: `{"messages"}` or `{"prompt"}` sent to chat
    (the prompt as one user message), or to completions when `"endpoint": "completions"`."""
    endpoint = row.get("endpoint", "chat")
    if endpoint not in ENDPOINTS:
        raise ValueError(f"row {row.get('id')!r}: endpoint must be one of {ENDPOINTS}")
    if endpoint == "completions":
        return PredictRequest(row["prompt"], None)
    messages = row.get("messages") or [{"role": "user", "content": row["prompt"]}]
    return PredictRequest("\n".join(str(m["content"]) for m in messages), list(messages))
