"""Knob changes that arrive on other threads (the control plane), applied between plans."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from engine.policy.base import Policy
from engine.policy.config import PolicyConfig
from engine.policy.reconfigure import reconfigured
from engine.policy.seq import SeqState


class PendingConfig:
    """A driver keeps one: `changes` from the control threads, `apply` on its scheduling thread
    before its next `step`, so every change is in force from the next plan on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: PolicyConfig | None = None

    def changes(self, current: PolicyConfig, changes: dict) -> PolicyConfig:
        """Validate and queue (ValueError on a bad knob); changes add up until applied."""
        with self._lock:
            self._pending = (self._pending or current).updated(changes)
            return self._pending

    def current(self, policy: Policy) -> PolicyConfig:
        return self._pending or policy.config

    def apply(self, policy: Policy, seqs: Iterable[SeqState], now: float) -> Policy:
        """The policy to plan with from now on (the same one where nothing is pending)."""
        with self._lock:
            new, self._pending = self._pending, None
        return policy if new is None else reconfigured(policy, new, seqs, now)
