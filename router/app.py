"""`create_app(settings)`: builds every gateway object in the lifespan and wires them together."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import redis.asyncio as redis
from fastapi import FastAPI

from predictor.base import Predictor
from predictor.registry import build_predictor
from predictor.trainer import start_trainer
from router.admin import install_admin
from router.admin_http import operator_tokens
from router.admin_mount import start_admin
from router.api import install_routes
from router.auth import Caller, parse_api_keys
from router.bus import Bus
from router.dispatcher import Dispatcher, DispatcherConfig
from router.errors import install_error_handlers
from router.events import Inbox
from router.front import Front, FrontConfig
from router.metrics import Metrics
from router.models import ModelCatalog
from router.observe import RequestIdMiddleware
from router.openapi import install_openapi
from router.placement import ROLES, buckets_for_role
from router.proxy_paths import install_proxy_paths
from router.queue import QueueConfig, RedisQueue
from router.ready import install_ready
from router.replica import Replica, assign_models
from router.score import ScoreConfig, parse_class_weights
from router.settings import Settings
from router.tasks import cancel_and_wait
from router.tenants import TenantUsage, UsageConfig
from router.window import WindowConfig

# A cut network or a frozen Redis must answer 503 within seconds, never hang a request. Every
# command is short; the longest blocking read (a relayed stream's XREAD) is RELAY_BLOCK_S (2 s).
# Pub/sub reads are exempt (redis-py blocks those without a timeout; the bus resubscribes on error).
REDIS_TIMEOUTS = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0, "health_check_interval": 30}


@dataclass
class Gateway:
    """Everything one gateway process holds; routes reach it through `app.state.gateway`."""

    settings: Settings
    front: Front
    dispatcher: Dispatcher | None
    metrics: Metrics
    redis: redis.Redis
    api_keys: dict[str, Caller]
    class_weights: dict[str, float]
    models: ModelCatalog


def engine_roles(settings: Settings) -> list[str]:
    urls = settings.engine_urls
    roles = [r.strip() for r in settings.engine_roles.split(",")] if settings.engine_roles.strip() else []
    if len(roles) > len(urls) or any(r not in ROLES for r in roles):
        raise ValueError("engine_roles: at most one of '', 'short', 'long' per engine")
    return roles + [""] * (len(urls) - len(roles))


def _configs(settings: Settings) -> tuple[ScoreConfig, QueueConfig, DispatcherConfig, list[str]]:
    roles = engine_roles(settings)
    roles_enabled = any(roles)
    buckets = buckets_for_role("", roles_enabled)
    score = ScoreConfig(
        aging_rate=settings.aging_rate,
        tenant_penalty=settings.tenant_penalty,
        class_weights=parse_class_weights(settings.class_weights),
    )
    result_ttl_s = int(settings.request_timeout_s)  # an answer waits as long as a request may run
    queue = QueueConfig(
        buckets=buckets, max_queue=settings.max_queue, lease_s=settings.lease_s, result_ttl_s=result_ttl_s
    )
    window = WindowConfig(
        window_min=settings.window_min, window_max=settings.window_max, headroom=settings.window_headroom
    )
    disp = DispatcherConfig(
        window=window,
        role_threshold=settings.role_threshold,
        roles_enabled=roles_enabled,
        poll_interval_s=settings.poll_interval_s,
        load_poll_s=settings.load_poll_s,
        lease_s=settings.lease_s,
        result_ttl_s=result_ttl_s,
        job_timeout_s=settings.request_timeout_s,
    )
    return score, queue, disp, roles


def create_app(
    settings: Settings, clock: Callable[[], float] = time.time, predictor: Predictor | None = None
) -> FastAPI:
    """`clock` drives queue scores and tenant windows (tests inject a controlled one); `predictor`
    replaces the one `settings.predictor` names."""
    score_cfg, queue_cfg, disp_cfg, roles = _configs(settings)
    front_cfg = FrontConfig(
        score=score_cfg,
        default_class=settings.default_class,
        role_threshold=settings.role_threshold,
        roles_enabled=disp_cfg.roles_enabled,
        lease_s=settings.lease_s,
        probe_timeout_s=settings.probe_timeout_s,
        request_timeout_s=settings.request_timeout_s,
        engine_urls=tuple(settings.engine_urls),
        engine_priority=settings.engine_priority,
    )
    api_keys = parse_api_keys(settings.api_keys)
    if not settings.redis_url:
        raise ValueError("redis_url is required (serve starts a local Redis when unset)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        client = redis.Redis.from_url(settings.redis_url, max_connections=4096, **REDIS_TIMEOUTS)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=1024)
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.request_timeout_s, connect=5.0), limits=limits
        )
        proc_id = uuid.uuid4().hex[:12]
        metrics, inbox, queue = Metrics(), Inbox(), RedisQueue(client, queue_cfg)
        usage = TenantUsage(
            client, UsageConfig(window_s=settings.tenant_window_s, cache_s=settings.tenant_usage_cache_s)
        )
        name = settings.predictor or "heuristic"
        chosen = predictor or build_predictor(
            name, redis=client, http=http, settings=settings, queue_depth=queue.depth
        )
        trainer = start_trainer(client, settings) if settings.train and name != "heuristic" else None
        dispatcher = None
        if settings.dispatch:
            replicas = [Replica(url, role) for url, role in zip(settings.engine_urls, roles, strict=True)]
            dispatcher = Dispatcher(
                disp_cfg, proc_id, queue, client, http, replicas, inbox, usage, metrics, clock
            )
        front = Front(
            front_cfg,
            proc_id,
            queue,
            client,
            inbox,
            chosen,
            usage,
            metrics,
            clock,
            admit=dispatcher.admit if dispatcher else queue.push,
            on_cancel=dispatcher.cancel if dispatcher else lambda _: None,
        )
        bus = Bus(
            client,
            proc_id,
            on_wake=dispatcher.wake if dispatcher else lambda: None,
            on_cancel=front.on_cancel,
            on_moved=inbox.moved,
        )
        catalog = ModelCatalog(
            http,
            (lambda: [r.url for r in dispatcher.replicas]) if dispatcher else (lambda: settings.engine_urls),
            settings.models_refresh_s,
            on_refresh=(lambda serving: assign_models(dispatcher.replicas, serving)) if dispatcher else (
                lambda _: None),
        )
        app.state.gateway = Gateway(
            settings, front, dispatcher, metrics, client, api_keys, score_cfg.class_weights, catalog
        )
        await front.start()
        await bus.start()
        if dispatcher:
            await dispatcher.start()
        watcher = await start_admin(app, settings, client, front, dispatcher, usage, queue, metrics,
                                    roles, proc_id, lambda n: build_predictor(n, redis=client, http=http,
                                                                              settings=settings,
                                                                              queue_depth=queue.depth))
        try:
            yield
        finally:
            if trainer:
                trainer[0].stop()
                await cancel_and_wait([trainer[1]])
            await watcher.stop()
            if dispatcher:
                await dispatcher.stop()
            await bus.stop()
            await front.stop()
            await http.aclose()
            await client.aclose()

    app = FastAPI(
        title="skipjoin gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_error_handlers(app)
    install_routes(app)
    install_openapi(app)
    install_admin(app, operator_tokens(settings.admin_token, settings.admin_tokens))
    install_ready(app)
    install_proxy_paths(app)
    app.add_middleware(RequestIdMiddleware, access_log=settings.access_log)
    return app
