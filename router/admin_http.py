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


def operator_tokens(admin_token: str, admin_tokens: str) -> dict[str, str]:
    """Operator name by bearer token: `admin_token` is operator "admin"; `admin_tokens` adds
    `name:token,...` (one per operator, so the audit log names who changed what)."""
    out: dict[str, str] = {admin_token: "admin"} if admin_token else {}
    for item in (x.strip() for x in admin_tokens.split(",") if x.strip()):
        name, sep, token = item.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"SKIPJOIN_ADMIN_TOKENS: expected name:token with a name of letters, digits, "
                             f"- or _, got {item.split(':')[0]!r}:…")
        if token in out:
            raise ValueError(f"SKIPJOIN_ADMIN_TOKENS: {name!r} reuses another operator's token")
        out[token] = name
    return out


def check_token(request: Request) -> AdminState:
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    name = None
    if scheme.lower() == "bearer":
        # Compare with every token (each in constant time), so the time does not say which matched.
        for token, operator in request.app.state.admin_tokens.items():
            if hmac.compare_digest(given.strip().encode(), token.encode()):
                name = operator
    if name is None:
        raise ApiError(401, "admin token required: Authorization: Bearer <SKIPJOIN_ADMIN_TOKEN>",
                       code="invalid_admin_token", headers={"WWW-Authenticate": "Bearer"})
    request.state.operator = name
    return request.app.state.admin


def who(request: Request) -> str:
    """The audit name: the operator the token belongs to, then any self-declared label in brackets
    (`X-Skipjoin-Admin`, e.g. the dashboard's), never the label alone."""
    client = request.client.host if request.client else "?"
    label = (request.headers.get("x-skipjoin-admin") or "").strip()[:64]
    return f"{request.state.operator}@{client}" + (f" ({label})" if label else "")


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


