"""The admin API under `/admin`: live knobs, audit, requests, replicas, dashboard data.

Behind a bearer token (`SKIPJOIN_ADMIN_TOKEN`, compared in constant time). With no token set the
routes are not mounted at all: admin is off (404), never open.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, ValidationError

from router import admin_config, admin_requests, admin_stats
from router.control import ENGINE, GATEWAY, REPLICAS, Conflict, ControlStore
from router.control_knobs import GatewayPatch
from router.control_replicas import changed, normalize_url
from router.control_watch import ControlWatcher
from router.dispatcher import Dispatcher
from router.errors import ApiError
from router.front import Front
from router.metrics import Metrics
from router.queue import RedisQueue
from router.settings import Settings

LIST_LIMIT = 500
DASHBOARD = Path(__file__).with_name("dashboard")


@dataclass
class AdminState:
    settings: Settings
    store: ControlStore
    watcher: ControlWatcher
    front: Front
    dispatcher: Dispatcher | None
    queue: RedisQueue
    metrics: Metrics


class ReplicaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    role: str | None = None


def _state(request: Request) -> AdminState:
    token = request.app.state.admin_token.encode()
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
        raise ApiError(401, "admin token required: Authorization: Bearer <SKIPJOIN_ADMIN_TOKEN>",
                       code="invalid_admin_token", headers={"WWW-Authenticate": "Bearer"})
    return request.app.state.admin


def _who(request: Request) -> str:
    client = request.client.host if request.client else "?"
    return f"{request.headers.get('x-skipjoin-admin', 'admin')}@{client}"


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ApiError(400, "body must be JSON", code="invalid_json") from exc


def _parse(model: type[BaseModel], body: Any) -> BaseModel:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(422, f"{field}: {err['msg']}", param=field, code="invalid_value") from exc


async def _changed(admin: AdminState, target: str) -> None:
    admin.metrics.admin_changes.labels(target).inc()
    await admin.watcher.poll()  # this gateway applies it at once; the others within POLL_S


router = APIRouter(prefix="/admin", dependencies=[Depends(_state)])


@router.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    a = request.app.state.admin
    return await admin_config.config_view(a.store, a.settings, a.watcher)


@router.patch("/config/gateway")
async def patch_gateway(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    changes = _parse(GatewayPatch, await _json(request)).changes()  # type: ignore[attr-defined]
    if not changes:
        raise ApiError(422, "no knobs given", param="body", code="invalid_value")
    default_class = a.front.cfg.default_class
    old, version = await admin_config.change(
        a.store, GATEWAY, changes, _who(request),
        lambda doc: admin_config.check_gateway({**a.watcher.base, **doc}, default_class))
    await _changed(a, "gateway")
    return {"version": version, "old": old.doc, "new": {**old.doc, **changes}}


@router.patch("/config/engine")
async def patch_engine(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    changes = await _json(request)
    if not isinstance(changes, dict) or not changes:
        raise ApiError(422, "body must be a JSON object of engine knobs", param="body", code="invalid_value")
    old, version = await admin_config.change(
        a.store, ENGINE, changes, _who(request), lambda doc: admin_config.check_engine(doc, changes))
    await _changed(a, "engine")
    return {"version": version, "old": old.doc, "new": {**old.doc, **changes}}


@router.get("/audit")
async def audit(request: Request, limit: int = 100) -> dict[str, Any]:
    if not 1 <= limit <= 10_000:
        raise ApiError(422, "limit must be in 1..10000", param="limit", code="invalid_value")
    return {"entries": await request.app.state.admin.store.audit(limit)}


async def _requests(a: AdminState) -> tuple[list[dict], list[dict]]:
    local = {} if a.dispatcher is None else {
        job_id: replica.url for replica in a.dispatcher.replicas for job_id in replica.tasks}
    queued = await admin_requests.queued(a.queue, a.front.cfg.score, a.front.clock(), LIST_LIMIT)
    running = await admin_requests.inflight(a.queue.r, local, LIST_LIMIT)
    return queued, running


@router.get("/requests")
async def list_requests(request: Request) -> dict[str, Any]:
    queued, running = await _requests(request.app.state.admin)
    return {"queued": queued, "inflight": running}


@router.delete("/requests/{job_id}")
async def cancel_request(request: Request, job_id: str) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    if not await admin_requests.cancel(a.queue, job_id, int(a.settings.request_timeout_s)):
        raise ApiError(404, f"no queued or running request {job_id}", code="not_found")
    return {"id": job_id, "cancelled": True}


@router.get("/replicas")
async def list_replicas(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    views = await admin_stats.gateways(a.store.r)
    return {"replicas": [
        {"url": s.url, "role": s.role, "state": s.state,
         "inflight": sum(g["replicas"].get(s.url, {}).get("inflight", 0) for g in views)}
        for s in a.watcher.replicas]}


@router.post("/replicas/{action}")
async def replica_action(request: Request, action: str) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    body: ReplicaBody = _parse(ReplicaBody, await _json(request))  # type: ignore[assignment]
    try:
        url = normalize_url(body.url)
    except ValueError as exc:
        raise ApiError(422, str(exc), param="url", code="invalid_value") from exc

    for _ in range(admin_config.RETRIES):
        old = await a.store.read(REPLICAS)
        try:
            new = changed(old.doc, a.watcher.configured, url, action, body.role)
        except ValueError as exc:
            status, param = (404, "url") if "no replica" in str(exc) else (422, "action")
            raise ApiError(status, str(exc), param=param, code="invalid_value") from exc
        try:
            version = await a.store.update(REPLICAS, old, new, _who(request))
        except Conflict:
            continue
        await _changed(a, "replicas")
        return {"version": version, "url": url, "state": new[url]["state"]}
    raise ApiError(409, "the replica set kept changing under this request; retry", code="conflict")


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    queued, running = await _requests(a)
    engine = await a.store.read(ENGINE)
    knobs = {"gateway": a.watcher.knobs, "engine": engine.doc, "engine_version": engine.version}
    return admin_stats.snapshot(queued, running, await a.queue.depth(), a.metrics,
                                await admin_stats.engines(a.store.r),
                                await admin_stats.gateways(a.store.r), knobs)


def install_admin(app: FastAPI, token: str | None) -> None:
    """Mount `/admin` (and the dashboard) only when a token is set."""
    if not token:
        return
    app.state.admin_token = token
    app.include_router(router)
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")
