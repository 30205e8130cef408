"""Talking to one OpenAI-compatible engine: forward a job (stream or not) and read its load."""

from __future__ import annotations

import json
import time
from typing import Protocol

import httpx

from router.engine_load import load_from_json, load_from_metrics
from router.events import CHUNK, DONE, ERROR, Event
from router.http1 import Http1Pool, Response, UpstreamConnectError
from router.job import Job
from router.records import Outcome
from router.schemas import error_body
from router.window import EngineLoad


class Sink(Protocol):
    async def send(self, ev: Event) -> None: ...


class UpstreamUnavailable(Exception):
    """The engine could not be reached before anything was sent to the client."""


def _error(status: int, message: str, type_: str, code: str | None = None) -> Event:
    return Event(ERROR, json.dumps(error_body(message, type_=type_, code=code)).encode(), status)


def upstream_body(job: Job) -> dict:
    """The body sent upstream: the client's fields, with usage always requested when streaming
    (the gateway needs token counts for its records; the usage chunk is dropped again if the
    client did not ask for it)."""
    if not job.stream:
        return job.body
    return {**job.body, "stream_options": {**(job.body.get("stream_options") or {}), "include_usage": True}}


async def fetch_load(http: httpx.AsyncClient, url: str, timeout: float) -> EngineLoad | None:
    """skipjoin's /load, else vLLM/SGLang gauges in /metrics; None if neither says.
    Raises httpx.TransportError when the engine is unreachable."""
    resp = await http.get(url + "/load", timeout=timeout)
    if resp.status_code == 200:
        load = load_from_json(resp.json())
        if load is not None:
            return load
    resp = await http.get(url + "/metrics", timeout=timeout)
    return load_from_metrics(resp.text) if resp.status_code == 200 else None


class Forward:
    """One job's trip to an engine; `run` sends its events to `sink` and returns what it measured."""

    def __init__(self, pool: Http1Pool, url: str, job: Job, sink: Sink):
        self.pool, self.url, self.job, self.sink = pool, url, job, sink
        self.dispatched_at = time.time()
        self.first_token_at: float | None = None
        self.prompt_tokens = 0
        self.output_tokens = 0
        self.chunks = 0
        self.finish_reason = ""

    def outcome(self) -> Outcome:
        return Outcome(
            self.prompt_tokens,
            self.output_tokens or self.chunks,
            self.finish_reason or "unknown",
            self.dispatched_at,
            self.first_token_at,
            time.time(),
            self.url,
        )

    async def run(self) -> Outcome:
        body = json.dumps(upstream_body(self.job), separators=(",", ":")).encode()
        rid = self.job.request_id
        headers = b"X-Request-Id: %s\r\n" % rid.encode() if rid else b""
        try:
            resp = await self.pool.post(self.job.path, body, headers)
        except UpstreamConnectError as exc:
            raise UpstreamUnavailable(str(exc)) from exc
        try:
            if resp.status != 200:
                await self._fail(resp)
            elif self.job.stream:
                await self._stream(resp)
            else:
                await self._once(resp)
        finally:
            resp.release()  # closes the connection unless fully read: the engine cancels
        return self.outcome()

    def _usage(self, usage: dict | None) -> None:
        if usage:
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.output_tokens = int(usage.get("completion_tokens") or 0)

    async def _fail(self, resp: Response) -> None:
        """An engine's refusal (4xx in OpenAI's shape) reaches the client as the engine wrote it;
        anything else becomes a 502 that quotes it."""
        body = await resp.read()
        try:
            err = json.loads(body)["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
        except (ValueError, KeyError, TypeError):
            err, message = None, body.decode(errors="replace")[:500]
        if resp.status < 500 and isinstance(err, dict):
            await self.sink.send(Event(ERROR, body, resp.status))
            return
        status = resp.status if resp.status < 500 else 502
        await self.sink.send(_error(status, f"upstream: {message}", "upstream_error"))

    async def _once(self, resp: Response) -> None:
        data = await resp.read()
        self.first_token_at = time.time()
        try:
            obj = json.loads(data)
            self._usage(obj.get("usage"))
            self.finish_reason = str((obj.get("choices") or [{}])[0].get("finish_reason") or "")
        except (ValueError, AttributeError, IndexError):
            pass
        await self.sink.send(Event(DONE, data))

    async def _stream(self, resp: Response) -> None:
        async for line in resp.lines():
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            await self._chunk(payload)
        await self.sink.send(Event(DONE))

    async def _chunk(self, payload: bytes) -> None:
        obj = json.loads(payload)
        choices = obj.get("choices")
        if obj.get("usage"):
            self._usage(obj["usage"])
            if not choices and not self.job.include_usage:
                return
        if choices:
            if self.first_token_at is None:
                self.first_token_at = time.time()
            self.chunks += 1
            reason = choices[0].get("finish_reason")
            if reason:
                self.finish_reason = str(reason)
        await self.sink.send(Event(CHUNK, payload))
