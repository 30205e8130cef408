"""The hidden-state feature: which layer and pooling, read from an engine response, kept in records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from predictor.arrays import decode_array, encode_array
from wire.xargs import PROBE_RESULT

POOLS = ("last", "mean", "last+mean")


@dataclass(frozen=True)
class FeatureSpec:
    # Decoder layer counted from 0 (as the engine counts). SmolLM2-135M has 30; on the repo prompt set
    # layer 19 ranked best (skipjoin predictor-eval --sweep).
    layer: int = 19
    pool: str = "last"

    def __post_init__(self):
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}")
        if self.layer < 0:
            raise ValueError("layer must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "pool": self.pool}

    def vector(self, hidden: dict[str, Any]) -> np.ndarray | None:
        """The feature vector from a `{"layers", "last", "mean"}` dict, or None if it lacks this layer."""
        layers = list(hidden.get("layers") or [])
        if self.layer not in layers:
            return None
        i = layers.index(self.layer)
        parts = [np.asarray(hidden[p][i], float) for p in self.pool.split("+") if hidden.get(p) is not None]
        return np.concatenate(parts) if len(parts) == len(self.pool.split("+")) else None


def hidden_from_response(body: dict[str, Any], layers: list[int]) -> dict[str, Any] | None:
    """Normalise the engine's hidden states to {"layers", "last", "mean"}.

    skipjoin's vLLM engine answers `kv_transfer_params.skipjoin_hidden = {"layers", "last"}`; the
    retired built-in engine a top-level `hidden_states` of the same shape (with "mean"); SGLang puts
    the last prompt token's vector (`return_hidden_states: "last"`; one per token with `true`) in
    `choices[i].hidden_states` or `meta_info.hidden_states`, for the one layer it was launched to
    capture, so it is reported as the first requested layer (no mean from a single vector).
    """
    probe = (body.get("kv_transfer_params") or {}).get(PROBE_RESULT)
    if isinstance(probe, dict) and "last" in probe:
        return {"layers": [int(x) for x in probe["layers"]], "last": probe["last"], "mean": probe.get("mean")}
    hs = body.get("hidden_states")
    if isinstance(hs, dict) and "last" in hs:
        return {
            "layers": [int(x) for x in hs.get("layers", layers)],
            "last": hs["last"],
            "mean": hs.get("mean"),
        }
    choices = body.get("choices") or [{}]
    raw = hs or choices[0].get("hidden_states") or (body.get("meta_info") or {}).get("hidden_states")
    if not raw:
        return None
    rows = np.asarray(raw[0] if _is_nested3(raw) else raw, float)
    rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
    mean = [rows.mean(0).tolist()] if len(rows) > 1 else None
    return {"layers": layers[:1], "last": [rows[-1].tolist()], "mean": mean}


def _is_nested3(raw: Any) -> bool:
    try:
        return isinstance(raw[0][0], list)
    except (IndexError, TypeError):
        return False


def encode_hidden(hidden: dict[str, Any]) -> dict[str, Any]:
    """Compact JSON for the calibration record (float16: 576 dims ~ 1.5 kB of base64 per layer)."""
    out: dict[str, Any] = {"layers": list(hidden["layers"])}
    for pool in ("last", "mean"):
        if hidden.get(pool) is not None:
            out[pool] = encode_array(np.asarray(hidden[pool], float), "float16")
    return out


def decode_hidden(d: dict[str, Any]) -> dict[str, Any]:
    return {"layers": list(d["layers"]), **{p: decode_array(d[p]) for p in ("last", "mean") if p in d}}
