"""Admin routes over what runs: requests (list, cancel) and engine replicas (add, pause, drain,
resume, remove)."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from router import admin_config, admin_requests, admin_stats
from router.admin_http import AdminState, changed, check_token, parse, read_json, who
from router.control import REPLICAS, Conflict
from router.control_replicas import changed as replica_doc
from router.control_replicas import normalize_url
from router.errors import ApiError
from wire import control

LIST_LIMIT = 500


class ReplicaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    role: str | None = None


router = APIRouter(prefix="/admin", dependencies=[Depends(check_token)])


async def requests(a: AdminState) -> tuple[list[dict], list[dict]]:
    local = {} if a.dispatcher is None else {
        job_id: replica.url for replica in a.dispatcher.replicas for job_id in replica.tasks}
    queued = await admin_requests.queued(a.queue, a.front.cfg.score, a.front.clock(), LIST_LIMIT)
    running = await admin_requests.inflight(a.queue.r, local, LIST_LIMIT)
    return queued, running


@router.get("/requests")
async def list_requests(request: Request) -> dict[str, Any]:
    queued, running = await requests(request.app.state.admin)
    return {"queued": queued, "inflight": running}


@router.delete("/requests/{job_id}")
async def cancel_request(request: Request, job_id: str) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    if not await admin_requests.cancel(a.queue, job_id, result_ttl_s=int(a.settings.request_timeout_s)):
        raise ApiError(404, f"no queued or running request {job_id}", code="not_found")
    await _audit(a, who(request), job_id)
    return {"id": job_id, "cancelled": True}


async def _audit(a: AdminState, by: str, job_id: str) -> None:
    """An operator's cancel joins the audit log beside knob changes (version 0: no document moved)."""
    fields = {"who": by, "target": "request", "at": repr(time.time()), "old": json.dumps({"id": job_id}),
              "new": json.dumps({"id": job_id, "cancelled": True}), "version": 0}
    await a.store.r.xadd(control.AUDIT, fields, maxlen=control.AUDIT_MAXLEN, approximate=True)


@router.get("/replicas")
async def list_replicas(request: Request) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    views = await admin_stats.gateways(a.store.r)
    return {"replicas": [
        {"url": s.url, "role": s.role, "state": s.state,
         "inflight": sum(_inflight(g, s.url) for g in views)}
        for s in a.watcher.replicas]}


def _inflight(view: dict, url: str) -> int:
    """What one gateway's report says runs on `url` (0 for a report that is not one)."""
    replicas = view.get("replicas")
    entry = replicas.get(url) if isinstance(replicas, dict) else None
    count = entry.get("inflight") if isinstance(entry, dict) else 0
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


@router.post("/replicas/{action}")
async def replica_action(request: Request, action: str) -> dict[str, Any]:
    a: AdminState = request.app.state.admin
    body: ReplicaBody = parse(ReplicaBody, await read_json(request))  # type: ignore[assignment]
    try:
        url = normalize_url(body.url)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="url", code="invalid_value") from exc
    for _ in range(admin_config.RETRIES):
        old = await a.store.read(REPLICAS)
        try:
            new = replica_doc(old.doc, a.watcher.configured, url, action, body.role)
        except ValueError as exc:
            message = str(exc)
            status, param = (404, "url") if "no replica" in message else (
                400, "role" if message.startswith("role") else "action")
            raise ApiError(status, message, param=param, code="invalid_value") from exc
        try:
            version = await a.store.update(REPLICAS, old, new, who(request))
        except Conflict:
            continue
        await changed(a, "replicas")
        return {"version": version, "url": url, "state": new[url]["state"]}
    raise ApiError(409, "the replica set kept changing under this request; retry", code="conflict")


