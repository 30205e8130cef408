"""The gateway's live knobs: which settings the admin API may change, and how each is checked.

Pure: a knob set is the settings' values overlaid with the control plane's overrides, validated
by building the very configs the gateway runs on (a value the gateway would refuse at start-up is
refused here with the same message).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict

from predictor.registry import NAMES as PREDICTORS
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
)


class GatewayPatch(BaseModel):
    """Body of `PATCH /admin/config/gateway`: any subset of the knobs (types checked by pydantic)."""

    model_config = ConfigDict(extra="forbid")
    class_weights: dict[str, float] | None = None
    aging_rate: float | None = None
    tenant_penalty: float | None = None
    tenant_window_s: float | None = None
    max_queue: int | None = None
    window_min: int | None = None
    window_max: int | None = None
    window_headroom: int | None = None
    predictor: str | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def from_settings(settings: Settings) -> dict[str, Any]:
    values = {k: getattr(settings, k) for k in KNOBS}
    values["class_weights"] = parse_class_weights(settings.class_weights)
    values["predictor"] = settings.predictor or "heuristic"
    return values


def score_config(knobs: dict[str, Any]) -> ScoreConfig:
    return ScoreConfig(knobs["aging_rate"], knobs["tenant_penalty"], dict(knobs["class_weights"]))


def window_config(knobs: dict[str, Any]) -> WindowConfig:
    return WindowConfig(knobs["window_min"], knobs["window_max"], knobs["window_headroom"])


def usage_config(knobs: dict[str, Any], base: UsageConfig) -> UsageConfig:
    return replace(base, window_s=knobs["tenant_window_s"])


def queue_config(knobs: dict[str, Any], base: QueueConfig) -> QueueConfig:
    return replace(base, max_queue=knobs["max_queue"])


def validate(knobs: dict[str, Any], default_class: str) -> None:
    """Raises ValueError naming the knob at fault (`exc.args[1]`)."""
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
