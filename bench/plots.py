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
    for ax, what in zip(axes, ("mean latency (s)", "p99 latency (s)"), strict=True):
        ax.set_xlabel("load")
        ax.set_ylabel(what)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
