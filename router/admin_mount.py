"""Builds the control plane's gateway side in the lifespan: store, watcher, admin state."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as redis
from fastapi import FastAPI

from predictor.base import Predictor
from router.admin_http import AdminState
from router.control import ControlStore
from router.control_knobs import from_settings
from router.control_watch import ControlWatcher, Targets
from router.dispatcher import Dispatcher
from router.front import Front
from router.metrics import Metrics
from router.queue import RedisQueue
from router.settings import Settings
from router.tenants import TenantUsage


async def start_admin(app: FastAPI, settings: Settings, client: redis.Redis, front: Front,
                      dispatcher: Dispatcher | None, usage: TenantUsage, queue: RedisQueue,
                      metrics: Metrics, roles: list[str], proc_id: str,
                      build_predictor: Callable[[str], Predictor]) -> ControlWatcher:
    """Every gateway follows the control plane (admin on or off); only admin-on ones change it."""
    store = ControlStore(client)

    def set_class_weights(weights: dict[str, float]) -> None:
        app.state.gateway.class_weights = weights

    targets = Targets(front, dispatcher, usage, queue, set_class_weights, build_predictor)
    configured = list(zip(settings.engine_urls, roles, strict=True))
    watcher = ControlWatcher(store, from_settings(settings), configured, targets, proc_id)
    await watcher.start()
    app.state.admin = AdminState(settings, store, watcher, front, dispatcher, queue, metrics, usage)
    return watcher
