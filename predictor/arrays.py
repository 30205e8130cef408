"""numpy arrays as plain JSON (dtype, shape, base64 bytes): safe to load from Redis, unlike pickle."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

_DTYPES = {"float16", "float32", "float64"}


def encode_array(a: np.ndarray, dtype: str = "float32") -> dict[str, Any]:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}")
    data = np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": dtype, "shape": list(data.shape), "b64": base64.b64encode(data.tobytes()).decode()}


def decode_array(d: dict[str, Any]) -> np.ndarray:
    if d.get("dtype") not in _DTYPES:
        raise ValueError(f"unsupported array dtype {d.get('dtype')!r}")
    raw = base64.b64decode(d["b64"], validate=True)
    shape = tuple(int(n) for n in d["shape"])
    a = np.frombuffer(raw, dtype=np.dtype(d["dtype"]).newbyteorder("<"))
    if a.size != int(np.prod(shape)):
        raise ValueError("array size does not match its shape")
    return a.reshape(shape).astype(np.float64)
