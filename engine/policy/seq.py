"""Request state as the policy sees it: plain data, no tensors."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Phase(enum.Enum):
    WAITING = "waiting"  # never ran, or evicted to recompute (`cached_len`: the prefix that survived)
    RUNNING = "running"  # in the active batch (KV on device)
    PAUSED = "paused"  # preempted, KV kept on the device, not in the active batch
    SWAPPED = "swapped"  # evicted, KV in the host tier
    FINISHED = "finished"


# How a preemption was carried out, as the driver reports it to `Policy.on_preempted`.
PREEMPT_MODES = {"paused": Phase.PAUSED, "swapped": Phase.SWAPPED, "recomputed": Phase.WAITING}


@dataclass(slots=True, eq=False)
class SeqState:
    rid: str
    arrival: float
    prompt_len: int
    predicted_len: float | None = None  # the gateway's prediction (its `priority`), if any
    max_tokens: int | None = None
    generated: int = 0
    phase: Phase = Phase.WAITING
    level: int = 0
    entry_level: int = 0
    quantum_left: float = 0.0  # generated tokens until the next demotion
    cached_len: int = 0  # prompt tokens already in the prefix cache (set by the adapter)
    last_run: float = 0.0  # last time it ran (or arrived): the promotion clock
    demoted_at: float = -math.inf
    evicted_at: float = -math.inf  # last time its KV was taken from the device
    preemptions: int = 0
    promotions: int = 0
    aged: bool = False  # promoted for waiting too long; served first in its level until it runs

    @property
    def context_len(self) -> int:
        return self.prompt_len + self.generated

    @property
    def resident(self) -> bool:
        """Its KV is on the device (running or paused)."""
        return self.phase is Phase.RUNNING or self.phase is Phase.PAUSED
