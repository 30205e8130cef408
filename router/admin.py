"""The admin API under `/admin`: live knobs, audit, requests, replicas, dashboard data.

Behind a bearer token (`SKIPJOIN_ADMIN_TOKEN`, compared in constant time). With no token set the
routes are not mounted at all: admin is off (404), never open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles

from router import admin_config, admin_live, admin_stats
from router.admin_http import AdminState, changed, check_token, parse, read_json, who
from router.control import ENGINE, GATEWAY, Conflict
from router.control_knobs import GatewayPatch
from router.errors import ApiError

DASHBOARD = Path(__file__).with_name("dashboard")


router = APIRouter(prefix="/admin", dependencies=[Depends(check_token)])


@router.get("/config")
async def get_config(request: Request) -> dict[str, Any]:
    a = request.app.state.admin
    return await admin_config.config_view(a.store, a.settings, a.watcher)


@router.patch("/config/gateway")
async def patch_gateway(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    changes = parse(GatewayPatch, await read_json(request)).changes()  # type: ignore[attr-defined]
    if not changes:
        raise ApiError(400, "no knobs given", param="body", code="invalid_value")
    default_class = a.front.cfg.default_class
    old, version = await admin_config.change(
        a.store, GATEWAY, changes, who(request),
        lambda doc: admin_config.check_gateway({**a.watcher.base, **doc}, default_class))
    await changed(a, "gateway", changes)
    return {"version": version, "old": old.doc, "new": {**old.doc, **changes}}


@router.patch("/config/engine")
async def patch_engine(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    changes = await read_json(request)
    if not isinstance(changes, dict) or not changes:
        raise ApiError(400, "body must be a JSON object of engine knobs", param="body", code="invalid_value")
    old, version = await admin_config.change(
        a.store, ENGINE, changes, who(request), lambda doc: admin_config.check_engine(doc, changes))
    await changed(a, "engine")
    return {"version": version, "old": old.doc, "new": {**old.doc, **changes}}


@router.delete("/config/{target}/{name}")
async def reset_knob(request: Request, target: str, name: str) -> dict[str, Any]:
    """Drop one override: the knob returns to its setting (gateway) or the engine's default."""
    a: AdminState = request.app.state.admin
    docs = {"gateway": GATEWAY, "engine": ENGINE}
    if target not in docs:
        raise ApiError(404, "target must be gateway or engine", param="target", code="not_found")
    for _ in range(admin_config.RETRIES):
        old = await a.store.read(docs[target])
        if name not in old.doc:
            raise ApiError(404, f"{name} is not overridden", param="name", code="not_found")
        new = {k: v for k, v in old.doc.items() if k != name}
        try:
            version = await a.store.update(docs[target], old, new, who(request))
        except Conflict:
            continue
        await changed(a, target, [name])
        return {"version": version, "old": old.doc, "new": new}
    raise ApiError(409, "the configuration kept changing under this request; retry", code="conflict")


@router.get("/audit")
async def audit(request: Request, limit: int = 100) -> dict[str, Any]:
    if not 1 <= limit <= 10_000:
        raise ApiError(400, "limit must be in 1..10000", param="limit", code="invalid_value")
    return {"entries": await request.app.state.admin.store.audit(limit)}


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    queued, running = await admin_live.requests(a)
    engine = await a.store.read(ENGINE)
    knobs = {"gateway": a.watcher.knobs, "engine": engine.doc, "engine_version": engine.version,
             "rejected": a.watcher.rejected}
    return admin_stats.snapshot(queued, running, await a.queue.depth(), a.metrics,
                                await admin_stats.engines(a.store.r),
                                await admin_stats.gateways(a.store.r), knobs)


def install_admin(app: FastAPI, tokens: dict[str, str]) -> None:
    """Mount `/admin` (and the dashboard) only when a token is set (`operator_tokens`)."""
    if not tokens:
        return
    app.state.admin_tokens = tokens
    app.include_router(router)
    app.include_router(admin_live.router)
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")
