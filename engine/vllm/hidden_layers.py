"""Which decoder layers the engine captures, and which of them a probe asks for.

Layer k is the output of decoder layer k counted from 0 (the residual stream after it, before the
final norm), as a forward hook on Hugging Face's `model.layers[k]` reads it. vLLM numbers its aux
hidden states by the layer they enter, so layer k is aux id k + 1. The set is fixed at start-up
(the compiled graph returns exactly those); a probe may ask for any subset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wire.xargs import PREDICT, PROBE, PROBE_LAYER


@dataclass(frozen=True)
class HiddenLayers:
    layers: tuple[int, ...]  # sorted, unique, counted from 0

    def __post_init__(self):
        if not self.layers:
            raise ValueError("hidden-state capture needs at least one layer")
        if any(k < 0 for k in self.layers):
            raise ValueError(f"layers are counted from 0, got {self.layers}")
        if tuple(sorted(set(self.layers))) != self.layers:
            raise ValueError(f"layers must be sorted and unique, got {self.layers}")

    @classmethod
    def from_config(cls, raw: Any) -> HiddenLayers:
        if isinstance(raw, int):
            raw = [raw]
        if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
            raise ValueError(f"kv_connector_extra_config.layers must be a layer or a list, got {raw!r}")
        return cls(tuple(sorted({int(k) for k in raw})))

    @property
    def aux_ids(self) -> tuple[int, ...]:
        return tuple(k + 1 for k in self.layers)

    def aux_index(self, wanted: Sequence[int]) -> tuple[int, ...]:
        return tuple(self.layers.index(k) for k in wanted)


def requested_layers(args: Mapping[str, Any], captured: HiddenLayers) -> tuple[int, ...] | str | None:
    """None for a request that is neither a probe nor flagged for inline prediction; the layers it
    wants; or why it cannot have them."""
    if not (_truthy(args.get(PROBE)) or is_inline(args)):
        return None
    raw = args.get(PROBE_LAYER, list(captured.layers))
    try:
        wanted = tuple(int(k) for k in (raw if isinstance(raw, list | tuple) else [raw]))
    except (TypeError, ValueError):
        return f"{PROBE_LAYER} must be an integer or a list of integers, got {raw!r}"
    missing = [k for k in wanted if k not in captured.layers]
    if missing or not wanted:
        return f"layers {missing or wanted} are not captured; this engine captures {list(captured.layers)}"
    return wanted


def is_inline(args: Mapping[str, Any]) -> bool:
    """Flagged for inline prediction: the engine predicts from this request's own prefill."""
    return _truthy(args.get(PREDICT))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no")
    return bool(value)
