"""PNG plots of latency against load (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def latency_vs_load(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """rows: dicts with 'policy', 'load', 'mean', 'p99' (one per policy and load)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for policy in dict.fromkeys(r["policy"] for r in rows):
        pts = sorted((r["load"], r["mean"], r["p99"]) for r in rows if r["policy"] == policy)
        loads = [p[0] for p in pts]
        axes[0].plot(loads, [p[1] for p in pts], marker="o", label=policy)
        axes[1].plot(loads, [p[2] for p in pts], marker="o", label=policy)
    for ax in axes:
        ax.set_yscale("log")
    return _save(fig, axes, ("mean latency (s)", "p99 latency (s)"), "load", title, path, dpi=100)


def _save(fig, axes, ylabels, xlabel: str, title: str, path: str | Path, dpi: int) -> Path:
    for ax, what in zip(axes, ylabels, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def regime_curves(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Mean, p99, TTFT p50 and TTFT p99 against load, one line per arm (rows as `latency_vs_load`'s,
    with 'ttft_p50' and 'ttft_p99'; a row may carry 'lo'/'hi' dicts of the spread over repeats)."""
    panels = (("mean", "mean latency (s)"), ("p99", "p99 latency (s)"),
              ("ttft_p50", "TTFT p50 (s)"), ("ttft_p99", "TTFT p99 (s)"))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for arm in dict.fromkeys(r["policy"] for r in rows):
        pts = sorted((r for r in rows if r["policy"] == arm), key=lambda r: r["load"])
        loads = [r["load"] for r in pts]
        for ax, (key, _) in zip(axes, panels, strict=True):
            ys = [r[key] for r in pts]
            line = ax.plot(loads, ys, marker="o", label=arm)[0]
            if all("lo" in r and key in r["lo"] for r in pts):
                ax.fill_between(loads, [r["lo"][key] for r in pts], [r["hi"][key] for r in pts],
                                color=line.get_color(), alpha=0.15)
    return _save(fig, axes, [what for _, what in panels], "load (share of measured capacity)", title, path,
                 dpi=90)
