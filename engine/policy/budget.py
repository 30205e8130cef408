"""A token bucket of copy seconds: bounds how much of wall time preemption copies may take."""

from __future__ import annotations


class SwapBudget:
    """Refills at `fraction` per wall second, holds `horizon_s` worth."""

    def __init__(self, fraction: float, horizon_s: float = 10.0):
        self.fraction, self.horizon_s = fraction, horizon_s
        self.capacity = fraction * horizon_s
        self.level = self.capacity
        self.last: float | None = None

    def refill(self, now: float) -> None:
        if self.last is not None:
            self.level = min(self.capacity, self.level + (now - self.last) * self.fraction)
        self.last = now

    def take(self, seconds: float) -> bool:
        if seconds > self.level:
            return False
        self.level -= seconds
        return True

    def retune(self, fraction: float) -> None:
        """A new share (a live knob change): what is left carries over, up to the new capacity."""
        self.fraction = fraction
        self.capacity = fraction * self.horizon_s
        self.level = min(self.level, self.capacity)
