"""Kubernetes' probes. `/live`: the process answers (liveness: a Redis outage must not restart
gateways that keep their streams alive through it). `/ready`: whether this gateway should get
traffic: Redis answers and at least one engine it sends to is healthy. (`/health` pings Redis.)"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from router.errors import ApiError

ENGINE_TIMEOUT_S = 2.0


def _engine_urls(gw) -> list[str]:
    if gw.dispatcher is None:  # a front-only gateway: the dispatching gateways' engines
        return gw.settings.engine_urls
    return [r.url for r in gw.dispatcher.replicas if not r.paused]


async def _healthy(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url + "/health", timeout=ENGINE_TIMEOUT_S)).status_code == 200
    except httpx.HTTPError:
        return False


def install_ready(app: FastAPI) -> None:
    @app.get("/live", include_in_schema=False)
    async def live() -> JSONResponse:
        return JSONResponse({"status": "alive"})

    @app.get("/ready", include_in_schema=False)
    async def ready(request: Request) -> JSONResponse:
        gw = request.app.state.gateway
        try:
            await gw.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any Redis failure means not ready
            raise ApiError(503, f"not ready: redis unavailable: {exc}") from exc
        urls = _engine_urls(gw)
        async with httpx.AsyncClient() as http:
            ok = await asyncio.gather(*(_healthy(http, u) for u in urls))
        engines = dict(zip(urls, ok, strict=True))
        if not any(ok):
            raise ApiError(503, f"not ready: no healthy engine of {len(urls)}")
        return JSONResponse({"status": "ready", "engines": engines})
