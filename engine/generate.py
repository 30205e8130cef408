"""One submitted request's life in the runner as text pieces: stream tokens, cut at stop strings, cancel.

Shared by chat and text completions, streamed or not. Leaving the iteration early (a stop string,
a client that went away, a cancelled task) cancels the request in the runner, which frees its blocks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from engine.openai_format import Outcome
from engine.textstream import TextStream


class GenerationError(RuntimeError):
    """The runner ended the request with an error (or cancelled it on its own)."""


async def text_pieces(runner: Any, rid: str, prompt_tokens: int,
                      text: TextStream) -> AsyncIterator[tuple[str, Outcome | None]]:
    """The submitted request `rid` as (text, None) pieces while generating, then (text, outcome) once."""
    out = Outcome(prompt_tokens=prompt_tokens)
    finished = False
    try:
        async with aclosing(runner.stream(rid)) as events:
            async for event in events:
                out.prompt_tokens, out.cached_tokens = event.prompt_tokens, event.cached_tokens
                out.completion_tokens += len(event.token_ids)
                if event.hidden_states is not None:
                    out.hidden_states = event.hidden_states
                piece = text.push(event.token_ids) if event.token_ids else ""
                if text.stopped:
                    out.finish_reason = "stop"
                    yield piece, out
                    return
                if event.finished:
                    finished = True
                    if event.finish_reason not in ("stop", "length"):
                        detail = getattr(event, "error", None) or event.finish_reason
                        raise GenerationError(f"generation ended: {detail}")
                    out.finish_reason = event.finish_reason
                    yield piece + text.flush(), out
                    return
                if piece:
                    yield piece, None
        raise GenerationError("the engine stopped before the request finished")
    finally:
        if not finished:
            runner.cancel(rid)
