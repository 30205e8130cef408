"""Summary numbers of a simulated or live run: latency, TTFT, per length class, throughput, SLO."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# A request is "long" when its output is in the top quartile of the workload's.
LONG_QUANTILE = 0.75


@dataclass(frozen=True)
class Summary:
    n: int
    completed: int
    mean: float
    p50: float
    p99: float
    ttft_mean: float
    ttft_p50: float
    ttft_p99: float
    short_mean: float
    short_p99: float
    long_mean: float
    long_p99: float
    throughput_rps: float
    tokens_per_s: float
    slo_attainment: float  # share of requests within the latency SLO
    slo_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def _q(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q)) if len(x) else float("nan")


def _m(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def default_slo(output_len: np.ndarray, per_token_s: float) -> np.ndarray:
    """Per-request latency SLO: a multiple of its own ideal decode time (FastServe's style)."""
    return 5.0 * output_len * per_token_s + 1.0


def summarize(arrival, first, done, output_len, slo_s: np.ndarray | float | None = None) -> Summary:
    arrival, first, done = (np.asarray(x, dtype=float) for x in (arrival, first, done))
    out = np.asarray(output_len)
    ok = ~np.isnan(done)
    lat = (done - arrival)[ok]
    ttft = (first - arrival)[ok & ~np.isnan(first)]
    cut = np.quantile(out, LONG_QUANTILE) if len(out) else 0
    long_ = (out > cut)[ok]
    span = float(np.nanmax(done) - arrival.min()) if ok.any() else float("nan")
    if slo_s is None:
        slo = np.full(int(ok.sum()), np.inf)
        slo_repr = float("inf")
    else:
        slo = np.broadcast_to(np.asarray(slo_s, dtype=float), out.shape)[ok]
        slo_repr = float(np.median(slo))
    return Summary(
        n=len(arrival), completed=int(ok.sum()), mean=_m(lat), p50=_q(lat, 0.5), p99=_q(lat, 0.99),
        ttft_mean=_m(ttft), ttft_p50=_q(ttft, 0.5), ttft_p99=_q(ttft, 0.99),
        short_mean=_m(lat[~long_]), short_p99=_q(lat[~long_], 0.99),
        long_mean=_m(lat[long_]), long_p99=_q(lat[long_], 0.99),
        throughput_rps=ok.sum() / span if span > 0 else float("nan"),
        tokens_per_s=float(out[ok].sum()) / span if span > 0 else float("nan"),
        slo_attainment=float((lat <= slo).mean()) if len(lat) else float("nan"), slo_s=slo_repr,
    )
