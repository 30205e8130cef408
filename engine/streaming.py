"""Server-sent events in OpenAI's chunk shape, and a response that always cleans up after itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

from engine import openai_format as fmt
from engine.generate import GenerationError
from engine.openai_format import Envelope, Outcome
from router.schemas import error_body


class CleanupStreamingResponse(StreamingResponse):
    """Closes its body iterator and runs `on_close` however the stream ends.

    A client that goes away mid-stream cancels the body iterator (Starlette listens for the
    disconnect); one that goes away before the first chunk leaves it unstarted, so `on_close`
    (cancel the request in the runner) must not depend on the iterator running at all.
    """

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None], **kwargs: Any):
        super().__init__(content, media_type="text/event-stream", **kwargs)
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]
            self.on_close()


async def sse_events(env: Envelope, pieces: AsyncIterator[tuple[str, Outcome | None]],
                     include_usage: bool, echo: str = "") -> AsyncIterator[str]:
    """OpenAI's chunks for one choice, then the usage chunk if asked, then `[DONE]`."""
    if env.chat or echo:
        first = fmt.chunk(env, "" if env.chat else echo, first=True, with_usage_field=include_usage)
        yield fmt.sse(first)
    try:
        async for text, out in pieces:
            if text:
                yield fmt.sse(fmt.chunk(env, text, with_usage_field=include_usage))
            if out is not None:
                last = fmt.chunk(env, None, out.finish_reason, with_usage_field=include_usage)
                if out.hidden_states is not None:
                    last["hidden_states"] = out.hidden_states
                yield fmt.sse(last)
                if include_usage:
                    yield fmt.sse(fmt.usage_chunk(env, out))
    except GenerationError as exc:
        yield fmt.sse(error_body(str(exc), "server_error"))
    yield fmt.sse("[DONE]")
