"""The gateway's queue score: a pure function over plain data (the simulator imports it).

Live score (lower runs earlier):

    score(t_now) = predicted_len * class_weight + tenant_penalty * tenant_usage
                   - aging_rate * (t_now - enqueued_at)

A Redis ZSET score cannot change with time, so the queue stores

    stored = base + aging_rate * enqueued_at        (base = the first two terms)

and `score(t_now) = stored - aging_rate * t_now`. The subtracted term is the same for every
queued request, so ordering by the stored score equals ordering by the live score at any moment:
nothing needs rescoring while it waits, and an old request overtakes newer short ones exactly when
its aging credit exceeds the gap in base scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScoreConfig:
    aging_rate: float = 10.0  # score tokens credited per second waited
    tenant_penalty: float = 0.05  # score tokens per token the tenant used in the window
    class_weights: dict[str, float] = field(default_factory=lambda: {"interactive": 1.0, "batch": 4.0})

    def __post_init__(self) -> None:
        if self.aging_rate < 0:
            raise ValueError("aging_rate must be >= 0")
        if self.tenant_penalty < 0:
            raise ValueError("tenant_penalty must be >= 0")
        if not self.class_weights:
            raise ValueError("class_weights must name at least one class")
        if any(w <= 0 for w in self.class_weights.values()):
            raise ValueError("class weights must be > 0")

    def weight(self, cls: str) -> float:
        return self.class_weights[cls]


def parse_class_weights(text: str) -> dict[str, float]:
    """'interactive:1.0,batch:4.0' -> {'interactive': 1.0, 'batch': 4.0}."""
    weights: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition(":")
        if not sep or not name:
            raise ValueError(f"class weight {item!r}: expected name:weight")
        weights[name.strip()] = float(value)
    return weights


def base_score(
    predicted_len: float, class_weight: float, tenant_usage_tokens: float, cfg: ScoreConfig
) -> float:
    """The aging-free part of the score."""
    return predicted_len * class_weight + cfg.tenant_penalty * tenant_usage_tokens


def score(
    predicted_len: float,
    class_weight: float,
    tenant_usage_tokens: float,
    enqueued_at: float,
    now: float,
    cfg: ScoreConfig,
) -> float:
    """Live score at `now` (lower runs earlier)."""
    base = base_score(predicted_len, class_weight, tenant_usage_tokens, cfg)
    return base - cfg.aging_rate * (now - enqueued_at)


def stored_score(
    predicted_len: float,
    class_weight: float,
    tenant_usage_tokens: float,
    enqueued_at: float,
    cfg: ScoreConfig,
) -> float:
    """The time-invariant ZSET score: ordering by it == ordering by `score(..., now)` for any now."""
    base = base_score(predicted_len, class_weight, tenant_usage_tokens, cfg)
    return base + cfg.aging_rate * enqueued_at


def live_from_stored(stored: float, now: float, cfg: ScoreConfig) -> float:
    return stored - cfg.aging_rate * now
