"""The prefill probe's hidden state, returned inline by vLLM's KV-connector channel.

A KV connector is vLLM's extension point with a half in the scheduler and a half in each worker
and a channel both ways; it moves no KV here. For a request flagged `skipjoin_probe`, the scheduler
half names the KV slot of its last prompt token in the step that computes it; the worker half
reads that row from the model's aux hidden states (the outputs EAGLE-3 uses, so they come out of
compiled graphs and CUDA graphs alike) and sends it back; the scheduler half puts it in the
request's `kv_transfer_params`, which vLLM copies into the OpenAI response. The probe is an
ordinary request, so its KV stays in the prefix cache for the real request that follows.

A real request flagged `skipjoin_predict` (inline prediction) is captured the same way, but its
vector goes to the scheduler (`take_inline`) the step it is computed, not into the answer: the
scheduler predicts from it and says what the answer should carry (`annotate`).
Non-probe requests pay one extra [tokens × hidden] output per step and a few dict look-ups.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
    KVConnectorWorkerMetadata,
)
from vllm.forward_context import get_forward_context

from engine.vllm.hidden_layers import HiddenLayers, is_inline, requested_layers
from engine.vllm.hidden_meta import CapturedMeta, InlineFeature, ProbeMeta, Target, last_prompt_slot
from wire.xargs import PROBE_RESULT

if TYPE_CHECKING:
    from vllm.config import VllmConfig
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.outputs import KVConnectorOutput
    from vllm.v1.request import Request

_MAX_PENDING = 4096  # finished probes awaiting their vector; more means vectors are being lost


class HiddenStateConnector(KVConnectorBase_V1):
    def __init__(self, vllm_config: VllmConfig, role: KVConnectorRole, kv_cache_config: KVCacheConfig):
        super().__init__(vllm_config, role, kv_cache_config)
        extra = self._kv_transfer_config.kv_connector_extra_config or {}
        self.layers = HiddenLayers.from_config(extra.get("layers"))
        self._probes: dict[str, tuple[Request, tuple[int, ...] | str]] = {}  # req id → (req, layers | error)
        self._captured: dict[str, list[list[float]]] = {}
        self._pending: OrderedDict[str, tuple[dict[str, Any], tuple[int, ...]]] = OrderedDict()
        self._worker_out: dict[str, list[list[float]]] = {}
        self._inline: dict[str, Request] = {}  # flagged for inline prediction, until finished
        self._inline_done: set[str] = set()  # whose feature went to the scheduler already
        self._fresh: list[InlineFeature] = []  # captured since the scheduler last took them
        self._notes: dict[str, dict[str, Any]] = {}  # what a running inline request's answer carries

    @property
    def requires_kv_delivery(self) -> bool:
        return False  # nothing is handed off: a preempted probe is simply recomputed

    # ---- scheduler half ----

    def on_new_request(self, request: Request) -> None:
        args = (request.sampling_params.extra_args or {}) if request.sampling_params else {}
        wanted = requested_layers(args, self.layers)
        if wanted is not None:
            self._probes[request.request_id] = (request, wanted)
            if not isinstance(wanted, str) and is_inline(args):
                self._inline[request.request_id] = request

    def get_num_new_matched_tokens(self, request: Request, num_computed_tokens: int) -> tuple[int, bool]:
        return 0, False

    def update_state_after_alloc(self, request: Request, blocks: KVCacheBlocks, num_external_tokens: int):
        return None

    def build_connector_meta(self, scheduler_output) -> KVConnectorMetadata:
        targets = []
        for req_id, (req, wanted) in self._probes.items():
            n = scheduler_output.num_scheduled_tokens.get(req_id, 0)
            last = req.num_prompt_tokens - 1
            if isinstance(wanted, str) or not (req.num_computed_tokens <= last < req.num_computed_tokens + n):
                continue
            slot = last_prompt_slot(self._block_ids(req_id), self._block_size(), req.num_prompt_tokens)
            targets.append(Target(req_id, slot, self.layers.aux_index(wanted)))
        return ProbeMeta(targets)

    def request_finished(self, request: Request, block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        entry = self._probes.pop(request.request_id, None)
        if entry is None:
            return False, None
        wanted = entry[1]
        if isinstance(wanted, str):
            return False, {PROBE_RESULT: {"error": wanted}}
        if request.request_id in self._inline:
            return False, self._inline_finished(request, wanted)
        params: dict[str, Any] = {}
        rows = self._captured.pop(request.request_id, None)
        if rows is not None:
            params[PROBE_RESULT] = _result(wanted, rows)
        elif request.num_computed_tokens >= request.num_prompt_tokens:
            # request_finished runs before update_connector_output within one update_from_output,
            # and outputs are serialised after it: the vector of this very step is filled in there.
            self._pending[request.request_id] = (params, wanted)
            while len(self._pending) > _MAX_PENDING:
                self._inline.pop(self._pending.popitem(last=False)[0], None)
        return False, params

    def _inline_finished(self, request: Request, wanted: tuple[int, ...]) -> dict[str, Any] | None:
        req_id = request.request_id
        params = self._notes.pop(req_id, {})
        if req_id not in self._inline_done and request.num_computed_tokens >= request.num_prompt_tokens:
            self._pending[req_id] = (params, wanted)  # its vector comes later in this very step
            return params
        self._inline.pop(req_id, None)
        self._inline_done.discard(req_id)
        return params or None

    def update_connector_output(self, connector_output: KVConnectorOutput) -> None:
        meta = connector_output.kv_connector_worker_meta
        if not isinstance(meta, CapturedMeta):
            return
        for req_id, rows in meta.vectors.items():
            if req_id in self._pending:
                params, wanted = self._pending.pop(req_id)
                inline = self._inline.pop(req_id, None)
                if inline is None:
                    params[PROBE_RESULT] = _result(wanted, rows)
                else:  # finished in the step that computed its prompt's end (max_tokens 1)
                    self._fresh.append(InlineFeature(inline, _result(wanted, rows), params))
            elif req_id in self._inline:
                if req_id not in self._inline_done:  # a recomputed prefill is not predicted twice
                    self._inline_done.add(req_id)
                    wanted = self._probes[req_id][1]
                    self._fresh.append(InlineFeature(self._inline[req_id], _result(wanted, rows)))
            elif req_id in self._probes:  # still running (max_tokens > 1): kept until it finishes
                self._captured[req_id] = rows
        del self._fresh[:-_MAX_PENDING]

    def take_inline(self) -> list[InlineFeature]:
        """Inline requests' features captured since the last call (the scheduler's, once per step)."""
        out, self._fresh = self._fresh, []
        return out

    def annotate(self, feature: InlineFeature, payload: dict[str, Any]) -> None:
        """What the request's answer carries in `kv_transfer_params` (non-streaming answers)."""
        if feature.params is not None:
            feature.params.update(payload)  # finished this step: its outputs are not sent yet
        elif feature.req_id in self._probes:
            self._notes[feature.req_id] = payload

    def _block_ids(self, req_id: str) -> list[int]:
        assert self._kv_cache_manager is not None, "bind_kv_cache_manager was not called"
        return self._kv_cache_manager.get_block_ids(req_id)[0]

    def _block_size(self) -> int:
        return self._kv_cache_config.kv_cache_groups[0].kv_cache_spec.block_size

    # ---- worker half ----

    def capture(self, aux: list[torch.Tensor]) -> None:
        """Called by the tap after each forward with the step's aux hidden states (one per layer)."""
        meta = self._connector_metadata
        if not isinstance(meta, ProbeMeta) or not meta.targets:
            return
        slot_mapping = get_forward_context().slot_mapping
        slots = next(iter(slot_mapping.values()), None) if isinstance(slot_mapping, dict) else None
        if slots is None:
            return
        for t in meta.targets:
            rows = (slots == t.slot).nonzero()
            if len(rows):
                r = int(rows[0, 0])
                self._worker_out[t.req_id] = [aux[i][r].float().tolist() for i in t.aux_index]

    def build_connector_worker_meta(self) -> KVConnectorWorkerMetadata | None:
        if not self._worker_out:
            return None
        out, self._worker_out = CapturedMeta(self._worker_out), {}
        return out

    def start_load_kv(self, forward_context, **kwargs: Any) -> None:
        return None

    def wait_for_layer_load(self, layer_name: str) -> None:
        return None

    def save_kv_layer(self, layer_name: str, kv_layer: torch.Tensor, attn_metadata, **kwargs: Any) -> None:
        return None

    def wait_for_save(self) -> None:
        return None


def _result(layers: tuple[int, ...], rows: list[list[float]]) -> dict[str, Any]:
    return {"layers": list(layers), "last": rows}
