"""The front: takes a client's request, predicts, scores, queues it, and streams its answer back.

The front holding a client heartbeats `skipjoin:front:<id>` (TTL = lease_s); a queued job whose
front is gone is dropped at pop time, so a dead gateway's clients cost the engines nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as redis
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from predictor.base import Prediction, Predictor, PredictRequest
from predictor.heuristic import HeuristicPredictor
from predictor.inline_predictor import inline_xargs
from router import keys
from router.auth import Caller
from router.errors import ApiError
from router.events import CHUNK, DONE, ERROR, LOST, Event, Inbox, Mailbox, read_events
from router.job import FORCED, Job
from router.metrics import Metrics
from router.observe import request_id
from router.placement import bucket_of
from router.queue import RedisQueue
from router.schemas import ChatCompletionRequest, CompletionRequest
from router.score import ScoreConfig, stored_score
from router.tasks import cancel_and_wait
from router.tenants import TenantUsage
from wire.xargs import PREDICTED

log = logging.getLogger("skipjoin.front")
PREFIX_CHARS = 256  # prompt characters that identify a shared prefix (affinity)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class FrontConfig:
    score: ScoreConfig
    default_class: str = "interactive"
    role_threshold: float = 256.0
    roles_enabled: bool = False
    lease_s: float = 10.0
    probe_timeout_s: float = 2.0
    request_timeout_s: float = 600.0
    engine_urls: tuple[str, ...] = ()
    engine_priority: bool = True  # send the predicted length as `priority` (engine must accept it)

    def __post_init__(self) -> None:
        if self.default_class not in self.score.class_weights:
            raise ValueError(f"default_class {self.default_class!r} has no class weight")
        if min(self.lease_s, self.probe_timeout_s, self.request_timeout_s) <= 0:
            raise ValueError("lease_s, probe_timeout_s and request_timeout_s must be > 0")


class Disconnected(Exception):
    pass


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


REQUEUE_LOST = 2  # times a vanished job is queued again before the client is told
MAX_PREDICTED = 1 << 20  # tokens; no model answers longer, and the score must stay finite
GATEWAY_ONLY = "skipjoin_"  # extension fields only the gateway writes (wire.xargs)


def _sane(pred: Prediction) -> Prediction:
    """A pathological answer (NaN, infinite, negative, past any context) is a failed prediction."""
    for value in (pred.length, pred.p90):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= MAX_PREDICTED:
            raise ValueError(f"pathological prediction {pred.length!r} (p90 {pred.p90!r})")
    return pred


def _unavailable(exc: Exception) -> ApiError:
    log.warning("queue unavailable: %s", exc)
    return ApiError(
        503, "queue unavailable; retry later", code="queue_unavailable", headers={"Retry-After": "1"}
    )


def home_replica(prefix_key: str, engine_urls: tuple[str, ...]) -> str:
    """The replica a prompt prefix hashes to: probes go there, and placement counts it as affine."""
    return engine_urls[int(prefix_key, 16) % len(engine_urls)] if engine_urls else ""


def _predict_request(
    req: ChatCompletionRequest | CompletionRequest, prompt: str, home: str
) -> PredictRequest:
    messages = (
        [m.model_dump(exclude_none=True) for m in req.messages]
        if isinstance(req, ChatCompletionRequest)
        else None
    )
    return PredictRequest(
        prompt_text=prompt,
        messages=messages,
        max_tokens=req.token_limit(),
        model=req.model,
        replica_url=home or None,
    )


class Front:
    def __init__(
        self,
        cfg: FrontConfig,
        front_id: str,
        queue: RedisQueue,
        client: redis.Redis,
        inbox: Inbox,
        predictor: Predictor,
        usage: TenantUsage,
        metrics: Metrics,
        clock: Callable[[], float],
        admit: Callable[[Job], Awaitable[int]],
        on_cancel: Callable[[str], None],
    ):
        self.cfg, self.id, self.queue, self.r, self.inbox = cfg, front_id, queue, client, inbox
        self.predictor, self.usage, self.metrics, self.clock = predictor, usage, metrics, clock
        self.admit, self.on_cancel = admit, on_cancel
        self._fallback = HeuristicPredictor()
        self._background: set[asyncio.Task] = set()
        self._heartbeat: asyncio.Task | None = None

    # --- lifecycle: the heartbeat that keeps this front's queued jobs alive ---
    async def start(self) -> None:
        await self.queue.heartbeat(self.id)
        self._heartbeat = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._heartbeat:
            await cancel_and_wait([self._heartbeat])
        with contextlib.suppress(redis.RedisError, OSError):
            await self.r.delete(keys.front(self.id))

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.lease_s / 3)
            try:
                await self.queue.heartbeat(self.id)
                self.metrics.queue_depth.set(await self.queue.depth())
            except (redis.RedisError, OSError) as exc:
                log.warning("heartbeat: %s", exc)

    # --- building a job ---
    async def _predict(self, preq: PredictRequest) -> Prediction:
        try:
            async with asyncio.timeout(self.cfg.probe_timeout_s):
                return _sane(await self.predictor.predict(preq))
        except Exception as exc:  # noqa: BLE001 - any predictor failure falls back, counted
            log.debug("predictor fallback: %r", exc)
            self.metrics.predictor_fallbacks.inc()
            return await self._fallback.predict(preq)

    def upstream_fields(self, body: dict, predicted: float, xargs: dict | None = None) -> dict:
        """The client's own JSON object, untouched (every parameter the gateway does not use
        passes through as sent), with the engine priority and prediction set by the gateway alone:
        a client may not jump the queue (`priority`, `skipjoin_predicted`) nor name the Redis keys
        an engine writes, so every `skipjoin_*` extension field it sends is dropped. `xargs`: the
        gateway's own `vllm_xargs` (inline prediction's flags)."""
        out = {k: v for k, v in body.items() if k != "priority"}
        mine = dict(xargs or {})
        if self.cfg.engine_priority:
            out["priority"] = int(round(predicted))  # lower runs first
            mine[PREDICTED] = float(predicted)
        for field in ("vllm_xargs", "custom_params"):  # vLLM's and SGLang's extension fields
            if isinstance(body.get(field), dict):
                out[field] = {k: v for k, v in body[field].items() if not k.startswith(GATEWAY_ONLY)}
        if mine:
            out["vllm_xargs"] = {**(out.get("vllm_xargs") or {}), **mine}
        return out

    async def build_job(
        self, kind: str, req: ChatCompletionRequest | CompletionRequest, caller: Caller, body: dict
    ) -> Job:
        prompt = req.prompt_text()
        prefix_key = hashlib.blake2b(prompt[:PREFIX_CHARS].encode(), digest_size=8).hexdigest()
        home = home_replica(prefix_key, self.cfg.engine_urls)
        limit = req.token_limit()
        if req.ignore_eos and limit:
            # The length is forced (a benchmark's): known exactly, nothing to probe or learn from.
            forced = float(min(limit, MAX_PREDICTED))
            pred = Prediction(forced, forced, FORCED)
        else:
            pred = await self._predict(_predict_request(req, prompt, home))
        weight = self.cfg.score.weight(caller.cls)
        now = self.clock()
        used = await self.usage.tokens(caller.tenant, now) if self.cfg.score.tenant_penalty else 0.0
        job_id = uuid.uuid4().hex
        return Job(
            id=job_id,
            kind=kind,
            body=self.upstream_fields(body, pred.length, inline_xargs(job_id, pred.features)),
            stream=req.stream,
            include_usage=req.include_usage(),
            predicted=pred.length,
            p90=pred.p90,
            predictor=pred.source,
            cls=caller.cls,
            tenant=caller.tenant,
            prompt_hash=hashlib.sha256(prompt.encode()).hexdigest(),
            prefix_key=prefix_key,
            home=home,
            front=self.id,
            enqueued_at=now,
            enqueued_wall=time.time(),
            score=stored_score(pred.length, weight, used, now, self.cfg.score),
            bucket=bucket_of(pred.length, self.cfg.role_threshold, self.cfg.roles_enabled),
            features=dict(pred.features),
            request_id=request_id.get(),
        )

    # --- serving one request ---
    async def respond(
        self,
        request: Request,
        kind: str,
        req: ChatCompletionRequest | CompletionRequest,
        caller: Caller,
        body: dict,
    ) -> Response:
        """Serve `req` (the fields the gateway reads) whose client JSON object is `body`."""
        job, box, depth = await self._enqueue(kind, req, caller, body)
        if depth < 0:
            self._close(job.id)
            raise ApiError(429, "queue full; retry later", code="queue_full", headers={"Retry-After": "1"})
        self.metrics.queue_depth.set(depth)
        try:
            events, first = await self._first_of(request, job, box)
        except BaseException as exc:
            self._close(job.id)
            self.cancel_later(job.id)
            if isinstance(exc, Disconnected):
                self.metrics.requests.labels(caller.cls, "499").inc()
                return Response(status_code=499)
            raise
        if first.kind == ERROR or not job.stream:
            self._close(job.id)
            self.metrics.requests.labels(caller.cls, str(first.status)).inc()
            if first.kind == ERROR:
                return Response(first.data, status_code=first.status, media_type="application/json")
            return Response(first.data, media_type="application/json")
        self.metrics.requests.labels(caller.cls, "200").inc()
        return StreamingResponse(
            self._sse(job.id, first, events), media_type="text/event-stream", headers=SSE_HEADERS
        )

    async def _enqueue(
        self, kind: str, req: ChatCompletionRequest | CompletionRequest, caller: Caller, body: dict
    ) -> tuple[Job, Mailbox, int]:
        """Build and queue the job; Redis down: 503 with Retry-After (nothing was queued)."""
        try:
            job = await self.build_job(kind, req, caller, body)
        except (redis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        box = self.inbox.open(job.id)
        try:
            return job, box, await self.admit(job)
        except (redis.RedisError, OSError) as exc:
            self._close(job.id)
            raise _unavailable(exc) from exc

    async def _first_of(self, request: Request, job: Job, box: Mailbox) -> tuple[AsyncIterator[Event], Event]:
        """The job's events and the first of them. A job that vanished before sending anything
        (dropped because this front's heartbeat lapsed in a stall) is queued again, with its score."""
        for attempt in range(REQUEUE_LOST + 1):
            events = read_events(box, self.r, job.id, self.cfg.lease_s, self.cfg.request_timeout_s)
            first = await self._first(request, events)
            if first.data != LOST.encode() or attempt == REQUEUE_LOST:
                return events, first
            log.warning("job %s vanished before its first token; queued again", job.id)
            try:
                await self.queue.heartbeat(self.id)
                if await self.admit(job) < 0:
                    break
            except (redis.RedisError, OSError):
                break
        return events, first

    async def _first(self, request: Request, events: AsyncIterator[Event]) -> Event:
        """The first event, unless the client leaves or the request times out first."""
        waiter = asyncio.ensure_future(anext(events))
        watcher = asyncio.ensure_future(_disconnect(request))
        try:
            done, _ = await asyncio.wait(
                {waiter, watcher}, timeout=self.cfg.request_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watcher.cancel()
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        if watcher in done:
            raise Disconnected()
        raise ApiError(503, "timed out waiting for an engine", code="timeout")

    async def _sse(self, job_id: str, first: Event, events: AsyncIterator[Event]):
        ev, finished = first, False
        try:
            while True:
                if ev.kind == DONE:
                    finished = True
                    yield b"data: [DONE]\n\n"
                    return
                yield b"data: " + ev.data + b"\n\n"
                if ev.kind != CHUNK:  # an error after the stream began: say so, then end
                    finished = True
                    return
                ev = await anext(events)
        finally:
            self._close(job_id)
            if not finished:
                self.cancel_later(job_id)

    def _close(self, job_id: str) -> None:
        box = self.inbox.close(job_id)
        if box is not None and box.remote:  # its events came through Redis: drop the stream now
            self._spawn(self.r.delete(keys.result(job_id)))

    # --- cancellation ---
    def _spawn(self, coro) -> None:
        """Run `coro` as its own task (also from a finally block of a cancelled task)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._reap_background)

    def _reap_background(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background: %r", task.exception())

    def cancel_later(self, job_id: str) -> None:
        self._spawn(self.cancel(job_id))

    async def cancel(self, job_id: str) -> None:
        self.on_cancel(job_id)
        try:
            await self.queue.cancel(job_id)
        except (redis.RedisError, OSError) as exc:
            log.warning("cancel %s: %s", job_id, exc)
