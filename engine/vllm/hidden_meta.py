"""What the hidden-state connector's two halves tell each other, step by step.

The scheduler half names the KV slot of each probe's last prompt token that this step computes;
the worker half finds that slot in the step's slot mapping, so it needs neither the request table
nor the batch order. The worker half answers with the captured vectors, keyed by request id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorMetadata,
    KVConnectorWorkerMetadata,
)

if TYPE_CHECKING:
    from vllm.v1.request import Request


@dataclass(frozen=True)
class Target:
    req_id: str
    slot: int  # KV slot (block id × block size + offset) of the last prompt token
    aux_index: tuple[int, ...]  # positions in the model's aux-hidden-state list, one per layer


@dataclass
class ProbeMeta(KVConnectorMetadata):
    targets: list[Target] = field(default_factory=list)


@dataclass
class CapturedMeta(KVConnectorWorkerMetadata):
    vectors: dict[str, list[list[float]]] = field(default_factory=dict)  # req id → one row per layer

    def aggregate(self, other: KVConnectorWorkerMetadata) -> KVConnectorWorkerMetadata:
        # Tensor-parallel ranks capture the same (all-reduced) rows: keep the first of each.
        if isinstance(other, CapturedMeta):
            return CapturedMeta({**other.vectors, **self.vectors})
        return self


def last_prompt_slot(block_ids: list[int], block_size: int, num_prompt_tokens: int) -> int:
    last = num_prompt_tokens - 1
    return block_ids[last // block_size] * block_size + last % block_size


@dataclass(frozen=True)
class InlineFeature:
    """A request flagged for inline prediction, with the feature of its own prefill."""

    request: Request
    hidden: dict[str, Any]  # {"layers", "last"}, as a probe's answer carries it
    # The finished request's outgoing kv_transfer_params (max_tokens 1); None while it runs.
    params: dict[str, Any] | None = None

    @property
    def req_id(self) -> str:
        return self.request.request_id

    @property
    def args(self) -> dict[str, Any]:
        return dict((self.request.sampling_params.extra_args or {}) if self.request.sampling_params else {})
