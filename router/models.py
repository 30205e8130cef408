"""The models the upstream engines serve, read from their `/v1/models` and cached.

The gateway answers `/v1/models` with the union of the engines' lists, refuses a request for a
model no engine serves (404, in vLLM's words and shape) before it is queued, and refuses a
`max_tokens` beyond the model's context (`max_model_len`, which vLLM reports) with a 400 naming
the limit. While no engine has answered, nothing is refused: the engine will say.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from router.errors import ApiError


class ModelCatalog:
    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: Callable[[], list[str]],
        refresh_s: float = 30.0,
        timeout_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[dict[str, frozenset[str] | None]], None] = lambda _: None,
    ):
        if refresh_s <= 0 or timeout_s <= 0:
            raise ValueError("refresh_s and timeout_s must be > 0")
        self.http, self.urls, self.clock, self.on_refresh = http, urls, clock, on_refresh
        self.refresh_s, self.timeout_s = refresh_s, timeout_s
        self._models: dict[str, dict[str, Any]] = {}
        self._serving: dict[str, list[str]] = {}  # model id -> the engine URLs that list it
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def models(self) -> dict[str, dict[str, Any]]:
        """Model id -> the engine's entry; refetched once `refresh_s` old (an engine that does not
        answer keeps its last list out of the union until it does)."""
        if self.clock() - self._at < self.refresh_s:
            return self._models
        async with self._lock:
            if self.clock() - self._at >= self.refresh_s:
                urls = self.urls()
                lists = await asyncio.gather(*(self._fetch(u) for u in urls))
                merged = {m["id"]: m for entries in lists for m in entries or []}
                if merged or not self._models:
                    self._models = merged
                    serving: dict[str, list[str]] = {}
                    for url, entries in zip(urls, lists, strict=True):
                        for m in entries or []:
                            serving.setdefault(m["id"], []).append(url)
                    self._serving = serving
                    # Placement learns what each replica serves (None: it did not say this time).
                    self.on_refresh({url: None if entries is None else frozenset(m["id"] for m in entries)
                                     for url, entries in zip(urls, lists, strict=True)})
                self._at = self.clock()
        return self._models

    async def _fetch(self, url: str) -> list[dict[str, Any]] | None:
        """The engine's model entries; None when it did not answer with a list."""
        try:
            resp = await self.http.get(url + "/v1/models", timeout=self.timeout_s)
            data = resp.json().get("data") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        if not isinstance(data, list):
            return None
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def serving(self, model: str | None) -> list[str] | None:
        """The engine URLs that serve `model` (no model: all that serve any); None while no engine
        has answered (then any engine may be asked, and will say)."""
        known = await self.models()
        if not known:
            return None
        if model is None:
            return sorted({u for urls in self._serving.values() for u in urls})
        return list(self._serving.get(model, []))

    def unknown_model(self, model: str) -> ApiError:
        """vLLM's own 404 for a model no engine serves."""
        return ApiError(
            404,
            f"The model `{model}` does not exist. Valid aliases: {', '.join(self._models)}.",
            type_="NotFoundError",
            param="model",
            code=404,
        )

    async def check(self, model: str | None, max_tokens: int | None) -> None:
        """Raise the engine's own answer for an unknown model or a `max_tokens` past the context."""
        known = await self.models()
        if not known:
            return
        if model is not None and model not in known:
            raise self.unknown_model(model)
        entry = known[model] if model is not None else next(iter(known.values()))
        limit = entry.get("max_model_len")
        if isinstance(limit, int) and max_tokens is not None and max_tokens > limit:
            raise ApiError(
                400,
                f"max_tokens ({max_tokens}) exceeds the model's context length of {limit} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
