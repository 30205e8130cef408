"""Workloads: request traces of (arrival, prompt_len, output_len), generated or loaded.

Generated workloads draw lengths from log-normal distributions fitted to published means
(see SIM_README_SECTION.md for the numbers and sources); arrivals are Poisson, optionally
modulated into bursts. Traces load from JSONL or CSV, including BurstGPT's CSV columns.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LengthSpec:
    mean: float
    cv: float  # coefficient of variation (std / mean) before clipping
    lo: int = 1
    hi: int = 8192

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean) - sigma2 / 2
        x = rng.lognormal(mu, math.sqrt(sigma2), n)
        return np.clip(np.rint(x), self.lo, self.hi).astype(np.int64)


@dataclass(frozen=True)
class WorkloadSpec:
    prompt: LengthSpec
    output: LengthSpec
    # Share of requests that open with one of `prefixes` shared system prompts of `prefix_len` tokens.
    prefix_share: float = 0.0
    prefixes: int = 0
    prefix_len: int = 0


# vLLM paper (Kwon et al., SOSP 2023, Fig. 11): ShareGPT mean input 161.3, output 338.0 tokens;
# Alpaca mean input 19.3, output 58.5. Output CVs: 0.7 (light) and 2 (heavy) per the study in DESIGN.md.
SPECS = {
    "sharegpt": WorkloadSpec(LengthSpec(161.3, 1.2, 4, 4096), LengthSpec(338.0, 0.7, 1, 4096)),
    "sharegpt-heavy": WorkloadSpec(LengthSpec(161.3, 1.2, 4, 4096), LengthSpec(338.0, 2.0, 1, 16384)),
    "alpaca": WorkloadSpec(LengthSpec(19.3, 0.6, 2, 512), LengthSpec(58.5, 0.7, 1, 1024)),
    "agents": WorkloadSpec(LengthSpec(161.3, 1.2, 4, 4096), LengthSpec(338.0, 0.7, 1, 4096),
                           prefix_share=0.8, prefixes=16, prefix_len=1024),
    # The shapes of issue 10's held-out production traces (an hour of a cloud chat service and a
    # code-completion service): chat prompts mean ~1,150 tokens (p99 ~4,100, max 14k), outputs mean
    # ~210 (7..1,000); code prompts mean ~2,050, outputs median ~13. Long prompts: prefill matters.
    "chat-long": WorkloadSpec(LengthSpec(1150.0, 0.7, 4, 14000), LengthSpec(210.0, 0.8, 7, 1000)),
    "code": WorkloadSpec(LengthSpec(2050.0, 1.0, 8, 14000), LengthSpec(24.0, 1.5, 1, 1000)),
}


@dataclass(frozen=True)
class Bursts:
    """Rate modulation: within each `period_s`, the first `share` of the time runs at `factor` x the
    mean rate and the rest slower, so the mean rate is unchanged."""

    factor: float = 1.5
    share: float = 0.25
    period_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.share < 1 or self.factor < 1 or self.factor * self.share >= 1 or self.period_s <= 0:
            raise ValueError("bursts need 0 < share < 1, factor >= 1, factor*share < 1, period_s > 0")

    @property
    def low_factor(self) -> float:
        return (1 - self.factor * self.share) / (1 - self.share)


@dataclass(frozen=True)
class Workload:
    arrival: np.ndarray  # seconds, non-decreasing
    prompt_len: np.ndarray
    output_len: np.ndarray
    predicted: np.ndarray  # predicted output length; NaN = no prediction
    prefix_id: np.ndarray  # shared-prefix group, -1 = none
    prefix_len: np.ndarray  # tokens of the shared prefix
    name: str = "trace"

    def __len__(self) -> int:
        return len(self.arrival)

    @property
    def duration(self) -> float:
        return float(self.arrival[-1] - self.arrival[0]) if len(self) > 1 else 0.0

    @property
    def rate(self) -> float:
        return (len(self) - 1) / self.duration if self.duration > 0 else math.inf

    def replace(self, **changes) -> Workload:
        return dataclasses.replace(self, **changes)

    def scaled_to_rate(self, rate: float) -> Workload:
        """The same trace with arrival times stretched to a mean rate of `rate` requests/s."""
        t0 = self.arrival[0] if len(self) else 0.0
        return self.replace(arrival=(self.arrival - t0) * (self.rate / rate))

    def head(self, n: int) -> Workload:
        return self.replace(**{f: getattr(self, f)[:n] for f in _ARRAYS})


_ARRAYS = ("arrival", "prompt_len", "output_len", "predicted", "prefix_id", "prefix_len")


def make_workload(arrival, prompt_len, output_len, predicted=None, name: str = "trace") -> Workload:
    n = len(arrival)
    pred = np.full(n, np.nan) if predicted is None else np.asarray(predicted, dtype=float)
    order = np.argsort(np.asarray(arrival, dtype=float), kind="stable")
    return Workload(np.asarray(arrival, dtype=float)[order], np.asarray(prompt_len, dtype=np.int64)[order],
                    np.asarray(output_len, dtype=np.int64)[order], pred[order],
                    np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.int64), name)


def poisson_arrivals(rng: np.random.Generator, n: int, rate: float,
                     bursts: Bursts | None = None) -> np.ndarray:
    unit = np.cumsum(rng.exponential(1.0, n))  # a unit-rate Poisson process, then time-warped
    if bursts is None:
        return unit / rate
    b = bursts
    hi, lo = b.factor * rate, b.low_factor * rate
    per_period = rate * b.period_s  # expected arrivals per period
    k, rem = np.divmod(unit, per_period)
    in_burst = hi * b.share * b.period_s
    t = np.where(rem < in_burst, rem / hi, b.share * b.period_s + (rem - in_burst) / lo)
    return k * b.period_s + t


def generate(name: str, n: int, rate: float = 1.0, seed: int = 0, bursts: Bursts | None = None) -> Workload:
    try:
        spec = SPECS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; choose from {sorted(SPECS)}") from None
    rng = np.random.default_rng(seed)
    prompt = spec.prompt.sample(rng, n)
    w = make_workload(poisson_arrivals(rng, n, rate, bursts), prompt, spec.output.sample(rng, n),
                      name=name + ("-bursts" if bursts else ""))
    if spec.prefix_share > 0:
        ids = np.where(rng.random(n) < spec.prefix_share, rng.integers(0, spec.prefixes, n), -1)
        w = w.replace(prefix_id=ids, prefix_len=np.where(ids >= 0, spec.prefix_len, 0),
                      prompt_len=w.prompt_len + np.where(ids >= 0, spec.prefix_len, 0))
    return w


def all_at_once(w: Workload) -> Workload:
    return w.replace(arrival=np.zeros(len(w)))


# --- traces -------------------------------------------------------------------------------------
# Column names as the public traces publish them: ours; BurstGPT (Timestamp, Request tokens,
# Response tokens); Azure's LLM inference traces (TIMESTAMP as a datetime, ContextTokens,
# GeneratedTokens); common OpenAI-usage spellings.
_KEYS = {
    "arrival": ("arrival", "timestamp", "Timestamp", "TIMESTAMP", "time", "arrival_time"),
    "prompt_len": ("prompt_len", "prompt_tokens", "input_len", "input_tokens", "Request tokens",
                   "ContextTokens"),
    "output_len": ("output_len", "output_tokens", "completion_tokens", "Response tokens",
                   "GeneratedTokens"),
}


def _number(field: str, value) -> float:
    """A number, or for arrivals also a date-time (seconds since the epoch)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        if field != "arrival":
            raise ValueError(f"trace {field} {value!r} is not a number") from None
    try:
        return datetime.fromisoformat(str(value).strip()).timestamp()
    except ValueError:
        raise ValueError(f"trace arrival {value!r} is neither seconds nor an ISO date-time") from None


def _pick(row: dict, field: str):
    for key in _KEYS[field]:
        if key in row and row[key] not in ("", None):
            return _number(field, row[key])
    raise ValueError(f"trace row lacks {field} (accepted columns: {_KEYS[field]}); got {sorted(row)}")


def load_trace(path: str | Path, n: int | None = None) -> Workload:
    """JSONL (one object per line) or CSV with a header, first `n` requests (None: all). BurstGPT
    and Azure trace CSVs load as published; rows with 0 output tokens are failures, dropped."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = [json.loads(line) for line in f if line.strip()] if path.suffix == ".jsonl" \
            else csv.DictReader(f)
        cols = []
        for r in rows:
            c = (_pick(r, "arrival"), _pick(r, "prompt_len"), _pick(r, "output_len"))
            if c[2] >= 1:
                cols.append(c)
            if n is not None and len(cols) >= n:
                break
    if not cols:
        raise ValueError(f"{path}: no requests with output_len >= 1")
    a, p, o = (np.array(x) for x in zip(*cols, strict=True))
    return make_workload(a - a.min(), np.maximum(p, 1), o, name=path.stem)
