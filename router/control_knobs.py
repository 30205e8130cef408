"""The gateway's live knobs: which settings the admin API may change, and how each is checked.

Pure: a knob set is the settings' values overlaid with the control plane's overrides, validated
by building the very configs the gateway runs on (a value the gateway would refuse at start-up is
refused here with the same message).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError

from predictor.registry import NAMES as PREDICTORS
from router.limits import parse_rate_limits
from router.queue import QueueConfig
from router.score import ScoreConfig, parse_class_weights
from router.settings import Settings
from router.tenants import UsageConfig
from router.window import WindowConfig

KNOBS = (
    "class_weights",
    "aging_rate",
    "tenant_penalty",
    "tenant_window_s",
    "max_queue",
    "window_min",
    "window_max",
    "window_headroom",
    "predictor",
    "rate_limits",
)


class RateLimit(BaseModel):
    """One tenant's limits (router/limits.py); None: unlimited."""

    model_config = ConfigDict(extra="forbid")
    rpm: StrictInt | None = Field(default=None, ge=1, le=1_000_000_000)
    tpm: StrictInt | None = Field(default=None, ge=1, le=1_000_000_000_000)


class GatewayPatch(BaseModel):
    """Body of `PATCH /admin/config/gateway`: any subset of the knobs. Integers are integers, numbers
    finite (NaN in the score or the usage window fails every request), each in a range that serves."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    class_weights: dict[str, float] | None = Field(default=None, max_length=64)
    aging_rate: float | None = Field(default=None, ge=0.0, le=1e6)
    tenant_penalty: float | None = Field(default=None, ge=0.0, le=1e6)
    tenant_window_s: float | None = Field(default=None, gt=0.0, le=30 * 86400.0)
    max_queue: StrictInt | None = Field(default=None, ge=1, le=100_000_000)
    window_min: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    window_max: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    window_headroom: StrictInt | None = Field(default=None, ge=0, le=1_000_000)
    predictor: str | None = Field(default=None, max_length=64)
    rate_limits: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], RateLimit] | None = (
        Field(default=None, max_length=100_000)
    )

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def check_overrides(overrides: Any) -> dict[str, Any]:
    """The stored overrides as the admin API would have taken them; ValueError (knob at fault in
    `exc.args[1]`) for anything else (a document written to Redis past the API)."""
    if not isinstance(overrides, dict):
        raise ValueError("gateway knobs must be a JSON object", "knobs")
    try:
        patch = GatewayPatch.model_validate({k: v for k, v in overrides.items() if k in KNOBS})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "knobs"
        raise ValueError(f"{field}: {err['msg']}", field.split(".")[0]) from exc
    return patch.changes()


def from_settings(settings: Settings) -> dict[str, Any]:
    values = {k: getattr(settings, k) for k in KNOBS}
    values["class_weights"] = parse_class_weights(settings.class_weights)
    values["predictor"] = settings.predictor or "heuristic"
    values["rate_limits"] = parse_rate_limits(settings.rate_limits)
    return values


def score_config(knobs: dict[str, Any]) -> ScoreConfig:
    return ScoreConfig(
        aging_rate=knobs["aging_rate"],
        tenant_penalty=knobs["tenant_penalty"],
        class_weights=dict(knobs["class_weights"]),
    )


def window_config(knobs: dict[str, Any]) -> WindowConfig:
    return WindowConfig(
        window_min=knobs["window_min"], window_max=knobs["window_max"], headroom=knobs["window_headroom"]
    )


def usage_config(knobs: dict[str, Any], base: UsageConfig) -> UsageConfig:
    return replace(base, window_s=knobs["tenant_window_s"])


def queue_config(knobs: dict[str, Any], base: QueueConfig) -> QueueConfig:
    return replace(base, max_queue=knobs["max_queue"])


def validate(knobs: dict[str, Any], default_class: str) -> None:
    """Raises ValueError naming the knob at fault (`exc.args[1]`)."""
    for name in KNOBS:
        if knobs.get(name) is None:
            raise ValueError(f"{name} must be set (null is no value)", name)
    for name, top in (("aging_rate", 1e6), ("tenant_penalty", 1e6), ("tenant_window_s", 30 * 86400.0)):
        if not _finite(knobs[name]) or knobs[name] > top:
            raise ValueError(f"{name} must be a finite number up to {top:g}", name)
    for name in ("max_queue", "window_min", "window_max", "window_headroom"):
        if not isinstance(knobs[name], int) or isinstance(knobs[name], bool):
            raise ValueError(f"{name} must be an integer", name)
    if not isinstance(knobs["predictor"], str):
        raise ValueError("predictor must be a name", "predictor")
    weights = knobs["class_weights"]
    if not isinstance(weights, dict) or not all(isinstance(k, str) and 1 <= len(k) <= 64 and _finite(w)
                                                and 0 < w <= 1e6 for k, w in weights.items()):
        raise ValueError("class weights must be numbers in (0, 1e6] named by 1..64 characters",
                         "class_weights")
    checks = (
        ("class_weights", lambda: score_config(knobs)),
        ("window_min", lambda: window_config(knobs)),
        ("tenant_window_s", lambda: usage_config(knobs, UsageConfig())),
        ("max_queue", lambda: queue_config(knobs, QueueConfig())),
    )
    for field, check in checks:
        try:
            check()
        except ValueError as exc:
            raise ValueError(str(exc), _field_in(str(exc), field)) from exc
    if default_class not in knobs["class_weights"]:
        raise ValueError(f"class_weights must keep the default class {default_class!r}", "class_weights")
    if knobs["predictor"] not in PREDICTORS:
        raise ValueError(f"predictor must be one of {', '.join(PREDICTORS)}", "predictor")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _field_in(message: str, fallback: str) -> str:
    named = [(message.find(k), k) for k in KNOBS if k in message]
    if named:
        return min(named)[1]  # the subject of the message comes first
    if "class weight" in message:
        return "class_weights"
    if "headroom" in message:
        return "window_headroom"
    return fallback


def overlay(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    return {**base, **{k: v for k, v in overrides.items() if k in KNOBS}}
