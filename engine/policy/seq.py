"""Request state as the policy sees it: plain data, no tensors."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Phase(enum.Enum):
    WAITING = "waiting"  # never ran, or preempted and recomputing
    RUNNING = "running"  # resident in the batch (KV on device)
    SWAPPED = "swapped"  # preempted, KV in the host pool
    FINISHED = "finished"


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
    preemptions: int = 0
    promotions: int = 0
    aged: bool = False  # promoted for waiting too long; served first in its level until it runs

    @property
    def context_len(self) -> int:
        return self.prompt_len + self.generated

    @property
    def resident(self) -> bool:
        return self.phase is Phase.RUNNING
