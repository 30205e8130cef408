"""What every admin route shares: the admin state, the bearer check, body parsing, the audit name."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from router.control import ControlStore
from router.control_rescore import SCORE_KNOBS, rescore
from router.control_watch import ControlWatcher
from router.dispatcher import Dispatcher
from router.errors import ApiError
from router.front import Front
from router.metrics import Metrics
from router.queue import RedisQueue
from router.settings import Settings
from router.tenants import TenantUsage


@dataclass
class AdminState:
    settings: Settings
    store: ControlStore
    watcher: ControlWatcher
    front: Front
    dispatcher: Dispatcher | None
    queue: RedisQueue
    metrics: Metrics
    usage: TenantUsage


def check_token(request: Request) -> AdminState:
    token = request.app.state.admin_token.encode()
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
        raise ApiError(401, "admin token required: Authorization: Bearer <SKIPJOIN_ADMIN_TOKEN>",
                       code="invalid_admin_token", headers={"WWW-Authenticate": "Bearer"})
    return request.app.state.admin


def who(request: Request) -> str:
    client = request.client.host if request.client else "?"
    return f"{request.headers.get('x-skipjoin-admin', 'admin')}@{client}"


async def read_json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ApiError(400, "body must be JSON", code="invalid_json") from exc


def parse(model: type[BaseModel], body: Any) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(400, f"{field}: {err['msg']}", param=field, code="invalid_value") from exc


async def changed(admin: AdminState, target: str, knobs: Iterable[str] = ()) -> None:
    admin.metrics.admin_changes.labels(target).inc()
    await admin.watcher.poll()  # this gateway applies it at once; the others within POLL_S
    if target == "gateway" and set(knobs) & set(SCORE_KNOBS):
        front = admin.front
        await rescore(admin.queue, admin.usage, front.cfg.score, front.cfg.default_class, front.clock())


