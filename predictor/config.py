"""One frozen config for the predictor package, built from the gateway's settings."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from predictor.features import FeatureSpec

QUESTION = (
    "Do not answer the above. Instead, just predict: how many tokens would your response be? "
    "Respond with only a number."
)


@dataclass(frozen=True)
class PredictorConfig:
    engine_urls: tuple[str, ...] = ()
    feature: FeatureSpec = field(default_factory=FeatureSpec)
    probe_timeout_s: float = 2.0
    question: str = QUESTION
    question_max_tokens: int = 6
    # The question probe's guess is used only while it parses and ranks well enough.
    question_min_parse_rate: float = 0.6
    question_min_kendall: float = 0.2
    # `auto` still asks the question on this share of requests, so its accuracy keeps being measured.
    question_sample_rate: float = 0.05
    cache_ttl_s: float = 3600.0
    # How often a gateway looks for a newer published model.
    refresh_s: float = 5.0
    # `auto` sends the prefill probe its chosen model does not need on this share of requests (so
    # the hidden-state models keep learning), and when the queue is empty (order does not matter then).
    prefill_sample_rate: float = 0.05
    # Probe even while the gateway's queue is empty (off: nothing waits, so order cannot matter).
    probe_when_idle: bool = False
    # A request no prefill probe was sent for is flagged for inline prediction instead (skipjoin's
    # vLLM engine reads its feature during its own prefill at no measurable cost): the engine's
    # MLFQ re-levels it, the prefix memory and the training records get its feature.
    inline_unprobed: bool = True
    # Trainer: refit every interval once `min_new` records arrived (counted by stream id, so a stream
    # trimmed at its cap still counts); fit on the latest `window`, weights halving every `half_life`.
    trainer_interval_s: float = 30.0
    trainer_min_records: int = 200
    trainer_min_new: int = 20
    trainer_window: int = 5000
    trainer_half_life: int = 2000
    # `auto` chooses on the newest `holdout_fraction` (at least `holdout_min` records) and leaves the
    # incumbent only for a challenger better by `switch_margin` in tau with `switch_confidence`
    # (share of paired bootstrap resamples of the held-out slice in which it wins).
    holdout_fraction: float = 0.25
    holdout_min: int = 100
    switch_margin: float = 0.03
    switch_confidence: float = 0.97
    # Fit on the shipped SmolLM2 prompt set too (only when its hidden size matches the records').
    use_seed_data: bool = True

    def __post_init__(self):
        for name in ("probe_timeout_s", "cache_ttl_s", "refresh_s", "trainer_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in (
            "question_min_parse_rate",
            "question_sample_rate",
            "prefill_sample_rate",
            "switch_confidence",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError("holdout_fraction must be in (0, 1)")
        if self.question_max_tokens < 1 or self.trainer_min_records < 4 or self.trainer_window < 10:
            raise ValueError("question_max_tokens >= 1, trainer_min_records >= 4, trainer_window >= 10")
        if self.trainer_half_life < 1 or self.holdout_min < 3 or self.trainer_min_new < 1:
            raise ValueError("trainer_half_life >= 1, holdout_min >= 3, trainer_min_new >= 1")
        if not 0 <= self.switch_margin < 1:
            raise ValueError("switch_margin must be in [0, 1)")

    @classmethod
    def from_settings(cls, settings: Any | None) -> PredictorConfig:
        """Reads `settings.predictor_<field>` where the gateway's settings define it, else defaults."""
        if settings is None:
            return cls()
        kw: dict[str, Any] = {"engine_urls": tuple(getattr(settings, "engine_urls", ()) or ())}
        if getattr(settings, "probe_timeout_s", None):
            kw["probe_timeout_s"] = float(settings.probe_timeout_s)
        for f in fields(cls):
            value = getattr(settings, f"predictor_{f.name}", None)
            if value is not None and f.name not in ("engine_urls", "feature"):
                kw[f.name] = value
        layer, pool = getattr(settings, "predictor_layer", None), getattr(settings, "predictor_pool", None)
        if layer is not None or pool is not None:
            kw["feature"] = FeatureSpec(layer if layer is not None else FeatureSpec().layer, pool or "last")
        return cls(**kw)
