"""HTTP bodies → token ids and the runner's GenerationRequest."""

from __future__ import annotations

from typing import Any

from router.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields

# OpenAI's default sampling temperature when the body names none.
DEFAULT_TEMPERATURE = 1.0


def chat_prompt_ids(tokenizer: Any, body: ChatCompletionRequest) -> list[int]:
    """The tokenizer's chat template with the assistant's turn opened; plain "role: text" without one."""
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = body.prompt_text() + "\nassistant:"
    return list(tokenizer.encode(text, add_special_tokens=False))


def completion_prompt_ids(tokenizer: Any, body: CompletionRequest) -> list[int]:
    return list(tokenizer.encode(body.prompt_text(), add_special_tokens=False))


def generation_fields(body: SamplingFields, input_ids: list[int], max_tokens_default: int) -> dict[str, Any]:
    """Keyword arguments of the runner's GenerationRequest for this body."""
    limit = body.token_limit()  # type: ignore[attr-defined]
    return {
        "input_ids": input_ids,
        "max_new_tokens": max_tokens_default if limit is None else limit,
        "temperature": DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "priority": body.priority,
        "ignore_eos": body.ignore_eos,
        "digits_only": body.digits_only,
        "return_hidden_states": body.return_hidden_states,
        "hidden_layers": body.hidden_layers,
        "seed": body.seed,
    }
