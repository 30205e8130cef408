"""Real SGLang 0.5.23 scheduler objects on CPU: requests, pools, allocator, radix tree, batches.

Only the model config is a stand-in (the batch reads two fields of it). Prefill and decode are the
batch's own `prepare_for_extend` / `prepare_for_decode` (they allocate and commit KV slots); the
forward pass that would fill them is the one thing not run.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from types import SimpleNamespace

import torch
from sglang.srt import runtime_context
from sglang.srt.managers.schedule_batch import Req, ScheduleBatch
from sglang.srt.managers.schedule_policy import AddReqResult, PrefillAdder, SchedulePolicy
from sglang.srt.mem_cache.allocator import TokenToKVPoolAllocator
from sglang.srt.mem_cache.cache_init_params import CacheInitParams
from sglang.srt.mem_cache.common import checkpoint_kv_cache
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool
from sglang.srt.mem_cache.radix_cache import RadixCache
from sglang.srt.mem_cache.unified_cache.components import ComponentType
from sglang.srt.mem_cache.unified_radix_cache import UnifiedRadixCache
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.srt.server_args import ServerArgs
from sglang.srt.speculative.spec_info import SpeculativeAlgorithm

MODEL = SimpleNamespace(vocab_size=1000, is_encoder_decoder=False)


def publish_args() -> None:
    """The flags `engine.sglang.launch` passes: priority scheduling, low values first, threshold 0."""
    args = ServerArgs(model_path="dummy", device="cpu", enable_priority_scheduling=True,
                      schedule_low_priority_values_first=True,
                      priority_scheduling_preemption_threshold=0)
    runtime_context.reset_context()
    # A scheduler's placement (rank 0 of one), as `run_scheduler_process` publishes it.
    runtime_context.publish(args, role="test", ranks=runtime_context.SpawnRanks(world_rank=0))


@dataclass
class Engine:
    """One scheduler's memory: request rows, a KV pool with its allocator, the radix tree."""

    req_to_token: ReqToTokenPool
    allocator: TokenToKVPoolAllocator
    tree: UnifiedRadixCache | RadixCache

    @classmethod
    def build(cls, kv_tokens: int = 256, rows: int = 16, tree: str = "unified") -> Engine:
        """`tree`: "unified" is what a GPU server builds (`mem_cache/registry.py`: always a
        `UnifiedRadixCache`, its default tree core); "radix" is the older `RadixCache`."""
        kv = MHATokenToKVPool(kv_tokens, page_size=1, dtype=torch.float16, head_num=1, head_dim=4,
                              layer_num=2, device="cpu", enable_memory_saver=False)
        allocator = TokenToKVPoolAllocator(kv_tokens, torch.float16, "cpu", kv, need_sort=False)
        req_to_token = ReqToTokenPool(rows, 512, "cpu", enable_memory_saver=False)
        params = CacheInitParams(disable=False, req_to_token_pool=req_to_token,
                                 token_to_kv_pool_allocator=allocator, page_size=1)
        if tree == "unified":
            params.tree_components = (ComponentType.FULL,)  # as `create_unified_radix_cache` sets
            return cls(req_to_token, allocator, UnifiedRadixCache(params))
        return cls(req_to_token, allocator, RadixCache(params))

    def schedule_policy(self) -> SchedulePolicy:
        # ("fcfs", tree, hicache, priority scheduling, low values first): the launch flags.
        return SchedulePolicy("fcfs", self.tree, False, True, True)

    def adder(self, running: ScheduleBatch | None) -> PrefillAdder:
        return PrefillAdder(1, self.tree, self.allocator, running, 1.0, 4096, None,
                            priority_scheduling_preemption_threshold=0)

    def admit_pass(self, waiting: list[Req], running: ScheduleBatch | None) -> PrefillAdder:
        """One pass of `Scheduler._get_new_batch_prefill_raw`'s admission loop, as SGLang runs it:
        order the queue, then admit in that order until a request does not fit."""
        self.schedule_policy().calc_priority(waiting, running)
        adder = self.adder(running)
        for req in waiting:
            req.init_next_round_input(self.tree)
            if adder.add_one_req(req, False, None) != AddReqResult.CONTINUE:
                break
        return adder

    def prefill(self, reqs: list[Req], running: ScheduleBatch | None = None) -> ScheduleBatch:
        """Admit `reqs` (which must fit), allocate their prefill's KV, take the first token and
        publish the prompt to the tree (as `process_batch_result_prefill` does): the running
        batch between two passes (`running` merged with the new requests, if given)."""
        adder = self.admit_pass(list(reqs), running)
        assert set(adder.can_run_list) == set(reqs), "prefill set-up: every request must be admitted"
        batch = ScheduleBatch.init_new(adder.can_run_list, self.req_to_token, self.allocator, self.tree,
                                       MODEL, False, SpeculativeAlgorithm.NONE)
        batch.prepare_for_extend()
        _sample(batch, 7)
        for req in batch.reqs:
            checkpoint_kv_cache(req, self.tree)
        if running is None:
            return batch
        running.merge_batch(batch)
        return running

    def kv_used(self) -> int:
        return self.allocator.size - self.allocator.available_size()


def request(rid: str, prompt_len: int, *, max_new: int = 8, priority: int | None = None,
            first_token: int = 1) -> Req:
    """A request with distinct prompt tokens (no accidental prefix sharing between requests)."""
    params = SamplingParams(max_new_tokens=max_new)
    params.normalize(None)
    tokens = array("q", range(first_token, first_token + prompt_len))
    req = Req(rid, "", tokens, params, priority=priority)
    if req.priority is None:
        req.priority = 2**63 - 1  # what Scheduler._set_or_validate_priority gives "none", low first
    req.time_stats.wait_queue_entry_time = 0.0
    return req


def decode(batch: ScheduleBatch, steps: int, token: int = 7) -> None:
    """`steps` decode steps: allocate the KV slot of each request's last token, take the next."""
    for _ in range(steps):
        batch.prepare_for_decode()
        _sample(batch, token)


def _sample(batch: ScheduleBatch, token: int) -> None:
    for req in batch.reqs:
        req.output_ids.append(token)
    batch.output_ids = torch.full((len(batch.reqs),), token, dtype=torch.int64)
