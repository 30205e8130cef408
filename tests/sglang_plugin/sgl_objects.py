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
from sglang.srt.mem_cache.common import checkpoint_kv_cache, release_kv_cache
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


class Loop:
    """SGLang's scheduler loop over real objects, one iteration per `step()`, built from the pieces
    `Scheduler.event_loop_normal` runs, in its order: the prefill pass (`calc_priority`, the
    admission loop with `preempt_to_schedule`, preempted requests back to the queue), else a decode
    step (`check_decode_mem`, `retract_decode`), the forward (the one stand-in: it takes token 7),
    then `process_batch_result` — the prompt checkpointed, finished requests released into the
    tree, the plugin's AFTER hook. `overlap=True` takes `event_loop_overlap`'s order: a batch's
    result is processed after the next batch is scheduled. (The `Scheduler` object itself needs a
    model worker, the distributed runtime and device streams, which a CPU test does not have.)"""

    def __init__(self, eng: Engine, driver, overlap: bool = False):
        self.eng, self.driver, self.overlap = eng, driver, overlap
        self.waiting: list[Req] = []
        self.running = ScheduleBatch(reqs=[], batch_is_full=False)  # as `init_running_status` starts
        self.unprocessed: ScheduleBatch | None = None  # overlap: launched, result not processed
        self.done: list[Req] = []
        self.log: list[dict] = []

    def step(self) -> None:
        batch, event = self._schedule()
        if batch is not None:
            _sample(batch, 7)  # the forward
        if self.overlap:
            last, self.unprocessed = self.unprocessed, batch
            if last is not None:
                self._process(last)
        elif batch is not None:
            self._process(batch)
        if batch is not None and batch is not self.running:
            if self.running.is_empty():
                self.running = batch
            else:
                self.running.merge_batch(batch)
        self.log.append(event)

    def drain(self) -> None:
        if self.unprocessed is not None:
            self._process(self.unprocessed)
            self.unprocessed = None

    def _schedule(self) -> tuple[ScheduleBatch | None, dict]:
        self.running.filter_batch()  # finished requests leave the batch
        event: dict = {}
        if self.waiting:
            adder = self.eng.admit_pass(self.waiting, self.running)
            event = {"order": [r.rid for r in self.waiting], "admit": [r.rid for r in adder.can_run_list],
                     "preempt": [r.rid for r in adder.preempt_list]}
            admitted = set(adder.can_run_list)
            self.waiting = [r for r in self.waiting if r not in admitted] + list(adder.preempt_list)
            if adder.can_run_list:
                batch = ScheduleBatch.init_new(adder.can_run_list, self.eng.req_to_token, self.eng.allocator,
                                               self.eng.tree, MODEL, False, SpeculativeAlgorithm.NONE)
                batch.prepare_for_extend()
                return batch, event
        if self.running.is_empty():
            return None, event
        if not self.running.check_decode_mem():
            retracted, _, _ = self.running.retract_decode()
            event["retract"] = [r.rid for r in retracted]
            self.waiting.extend(retracted)
        self.running.prepare_for_decode()
        return self.running, event

    def _process(self, batch: ScheduleBatch) -> None:
        extend = batch.forward_mode.is_extend()
        for req in batch.reqs:
            if req.finished():
                continue
            req.update_finish_state()
            if req.finished():
                release_kv_cache(req, self.eng.tree, checkpoint=True)
                self.done.append(req)
            elif extend:
                checkpoint_kv_cache(req, self.eng.tree)
        self.driver.after_batch_result(None, None, batch)  # the plugin's AFTER hook
