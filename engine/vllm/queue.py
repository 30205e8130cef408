"""vLLM's waiting queue in the policy's order.

vLLM admits from the front of `self.waiting` until its budgets run out. The adapter re-orders
this queue before every `schedule()`, so vLLM's mechanics run in the policy's order; between
re-orders new arrivals go to the back and preempted requests to the front, as in FCFS.
"""

from __future__ import annotations

from collections.abc import Iterable

from vllm.v1.core.sched.request_queue import FCFSRequestQueue
from vllm.v1.request import Request


class PolicyQueue(FCFSRequestQueue):
    def replace(self, ordered: Iterable[Request]) -> None:
        """Make `ordered` the queue's contents, front first."""
        self.clear()
        self.extend(ordered)
