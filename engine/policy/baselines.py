"""Comparison policies: strict priority, SJF and the oracle SRPT bound (FCFS is `Policy`).

SJF and SRPT order by work in engine seconds: prefill still to do plus expected output, each at
its price (`Policy.remaining_work_s`); ordering by output tokens alone is no bound on prompt-heavy
traffic (there it can be worse than FCFS).
"""

from __future__ import annotations

import math

from engine.policy.base import Policy
from engine.policy.seq import SeqState


class PriorityPolicy(Policy):
    """Strict priority on the `priority` value (lower first); preempts only for a better value."""

    preemptive = True

    @classmethod
    def default_name(cls) -> str:
        return "priority"

    def key(self, seq: SeqState, now: float) -> tuple:
        prio = seq.predicted_len if seq.predicted_len is not None else math.inf
        return (prio, seq.arrival, seq.rid)

    def may_preempt(self, cand, stop, evict, running, now) -> bool:
        return True


class SJFPolicy(Policy):
    """Shortest predicted job first, run to completion."""

    @classmethod
    def default_name(cls) -> str:
        return "sjf"

    def key(self, seq: SeqState, now: float) -> tuple:
        done = seq.generated * self.costs.decode_s_per_token  # the whole job's size, not what is left
        return (self.remaining_work_s(seq) + done, seq.arrival, seq.rid)


class SRPTPolicy(Policy):
    """Shortest remaining work first with free preemption: with exact lengths, the reference bound."""

    preemptive = True
    static_keys = False

    @classmethod
    def default_name(cls) -> str:
        return "srpt"

    def key(self, seq: SeqState, now: float) -> tuple:
        return (self.remaining_work_s(seq), seq.arrival, seq.rid)

    def may_preempt(self, cand, stop, evict, running, now) -> bool:
        return True
