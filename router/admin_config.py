"""Live configuration through the admin API: validate a change, store it, say where values come from.

Gateway knobs validate against the configs the gateway runs on (`control_knobs`); engine knobs
against `engine.policy.PolicyConfig.updated` (pure, the engine's own check), so a value any
replica would refuse is refused here with 400 naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.policy.config import PolicyConfig
from router import control_knobs
from router.control import ENGINE, GATEWAY, Conflict, ControlStore, Doc, Snapshot
from router.errors import ApiError
from router.settings import Settings

SECRET = ("api_keys", "admin_token", "admin_tokens", "redis_url")
RETRIES = 5  # compare-and-set attempts when admins race


def invalid(message: str, field: str) -> ApiError:
    return ApiError(400, f"{field}: {message}" if field not in message else message,
                    param=field, code="invalid_value")


def _named(message: str, names: list[str], fallback: str) -> str:
    hits = [(message.find(n), n) for n in names if n in message]
    return min(hits)[1] if hits else fallback


def check_engine(knobs: dict[str, Any], changes: dict[str, Any]) -> None:
    try:
        PolicyConfig().updated(knobs)
    except ValueError as exc:
        fields = sorted(changes, key=len, reverse=True)
        raise invalid(str(exc), _named(str(exc), fields, next(iter(changes)))) from exc


def check_gateway(knobs: dict[str, Any], default_class: str) -> None:
    try:
        control_knobs.validate(knobs, default_class)
    except ValueError as exc:
        raise invalid(exc.args[0], exc.args[1] if len(exc.args) > 1 else "knobs") from exc


async def change(store: ControlStore, doc: Doc, changes: dict[str, Any], who: str,
                 check) -> tuple[Snapshot, int]:
    """Merge `changes` into the stored overrides after `check(merged)`; returns (old, version)."""
    for _ in range(RETRIES):
        old = await store.read(doc)
        merged = {**old.doc, **changes}
        check(merged)
        try:
            return old, await store.update(doc, old, merged, who)
        except Conflict:
            continue
    raise ApiError(409, "the configuration kept changing under this request; retry", code="conflict")


def _source(settings: Settings, name: str) -> str:
    return f"env SKIPJOIN_{name.upper()}" if name in settings.model_fields_set else "default"


def settings_view(settings: Settings, overrides: dict[str, Any], live: dict[str, Any],
                  version: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if name in SECRET and value:
            value = "***"
        out[name] = {"value": value, "source": _source(settings, name)}
    for name, value in live.items():
        source = f"control plane v{version}" if name in overrides else out[name]["source"]
        out[name] = {"value": value, "source": source, "live": True}
    return out


def engine_view(overrides: dict[str, Any], version: int) -> dict[str, Any]:
    defaults = dataclasses.asdict(PolicyConfig())
    return {
        name: {"value": overrides.get(name, value),
               "source": f"control plane v{version}" if name in overrides else "engine default"}
        for name, value in defaults.items()
    }


async def config_view(store: ControlStore, settings: Settings, watcher) -> dict[str, Any]:
    engine = await store.read(ENGINE)
    gateway = await store.read(GATEWAY)
    return {
        "gateway": settings_view(settings, gateway.doc, watcher.knobs, gateway.version),
        "engine": engine_view(engine.doc, engine.version),
        "replicas": [dataclasses.asdict(s) for s in watcher.replicas],
        "versions": {"gateway": gateway.version, "engine": engine.version,
                     "gateway_applied_here": watcher.versions["gateway"]},
    }
