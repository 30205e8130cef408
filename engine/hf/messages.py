"""What goes into the engine and what comes out of it, as plain data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GenerationRequest:
    input_ids: list[int]
    max_new_tokens: int  # 0: prefill only (the prompt stays in the prefix cache)
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    priority: int | None = None  # predicted output tokens; lower runs earlier
    ignore_eos: bool = False
    digits_only: bool = False
    return_hidden_states: bool = False
    hidden_layers: list[int] | None = None  # None: the middle layer
    seed: int | None = None
    rid: str | None = None

    def validate(self, num_layers: int) -> None:
        if not self.input_ids:
            raise ValueError("input_ids must not be empty")
        if self.max_new_tokens < 0:
            raise ValueError("max_new_tokens must be >= 0")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        for layer in self.hidden_layers or []:
            if not 0 <= layer < num_layers:
                raise ValueError(f"hidden layer {layer} out of range 0..{num_layers - 1}")


@dataclass
class TokenEvent:
    rid: str
    token_ids: list[int]  # new tokens since the last event (EOS is not included)
    finished: bool
    finish_reason: str | None  # stop | length | cancelled | error
    prompt_tokens: int
    cached_tokens: int  # prompt tokens served by the prefix cache
    hidden_states: dict | None = None  # {"layers": [...], "last": [[...]], "mean": [[...]]} when asked for
    error: str | None = None
