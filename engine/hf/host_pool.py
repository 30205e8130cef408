"""Host swap pool: owns the host KV blocks and the copy plans between device and host.

A thin subclass of transformers' `OffloadingManager`: its batched, stream-ordered copies are reused
as they are; what changes is (1) the pool is pinned only where there is an accelerator (pinning needs
one), (2) the policy may preempt for priority, not only on starvation, and (3) every swap is counted
and timed for the policy's cost estimates. Recompute (transformers' "soft reset") is the named
fallback when the pool is full.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers.generation.continuous_batching.cache_allocators import CachePool
from transformers.generation.continuous_batching.offloading_manager import OffloadingManager
from transformers.generation.continuous_batching.requests import RequestState, RequestStatus


@dataclass
class SwapCounters:
    preemptions: int = 0
    swap_outs: int = 0
    swap_ins: int = 0
    recomputes: int = 0
    swap_out_bytes: int = 0
    swap_in_bytes: int = 0
    swap_seconds: float = 0.0


def recompute(state: RequestState) -> RequestState:
    """The fallback: drop the KV; prompt + generated tokens return as a new prompt (exact under greedy)."""
    fresh = state.create_equivalent_initial_request()
    state._status = RequestStatus.FINISHED
    return fresh


class HostSwap(OffloadingManager):
    def __init__(self, cache, scheduler, host_blocks: int, compute_stream, distributed_helper,
                 on_preempted: Callable[[RequestState, bool], None]):
        # No GiB from the parent: it would pin, which fails without an accelerator. The pool is sized here.
        super().__init__(cache, scheduler, 0.0, 0.8, compute_stream, distributed_helper)
        self.counters = SwapCounters()
        self.on_preempted = on_preempted
        self._swap_tokens = 0  # tokens moved by the last timed copy
        self.host_blocks = host_blocks
        sectors = host_blocks * self._bytes_per_model_block() // cache.bytes_per_sector
        if sectors <= 0:
            return
        pin = torch.device(cache.device).type == "cuda"  # pinning needs an accelerator
        self._num_cpu_sectors = sectors
        self._cpu_tensor = torch.empty(sectors * cache.bytes_per_sector, dtype=torch.uint8, pin_memory=pin)
        self._cpu_pool = CachePool(sectors, len(cache.cache_allocators), num_reserved_sectors=0)
        for name, allocator in cache.cache_allocators.items():
            self._cpu_pool.set_blocks_per_sector(allocator.index, allocator.blocks_per_sector)
            self._cpu_views[name] = self._cpu_tensor.view(-1, allocator.bytes_per_block)

    def _bytes_per_model_block(self) -> int:
        return sum(a.bytes_per_block for a in self.cache.cache_allocators.values())

    def _table_bytes(self, table: dict[str, list[int]]) -> int:
        allocators = self.cache.cache_allocators
        return sum(len(ids) * allocators[name].bytes_per_block for name, ids in table.items())

    def _reserve_cpu_blocks(self, block_counts):
        # The parent counts free blocks, then may fold whole free sectors back (which removes those blocks
        # from the count) and pops too many. Folding first keeps its count true.
        if self._cpu_pool is not None:
            self._cpu_pool.try_to_free_sectors()
        return super()._reserve_cpu_blocks(block_counts)

    # --- accounting ------------------------------------------------------------------------------
    def _sync(self) -> None:
        if self._compute_stream is not None:
            self._compute_stream.synchronize()

    def _offload_to_cpu(self, victims, victim_block_tables) -> set[str]:
        start = time.perf_counter()
        swapped = super()._offload_to_cpu(victims, victim_block_tables)
        self._sync()
        self.counters.swap_outs += len(swapped)
        self.counters.swap_out_bytes += sum(self._table_bytes(victim_block_tables[rid]) for rid in swapped)
        self.counters.swap_seconds += time.perf_counter() - start
        return swapped

    def restore_scheduled_requests(self, requests_in_batch) -> None:
        restoring = [fs.state.request_id for fs in requests_in_batch if fs.state.is_cpu_offloaded]
        if not restoring:
            return
        nbytes = sum(self._table_bytes(self._request_id_to_cpu_blocks.get(rid, {})) for rid in restoring)
        start = time.perf_counter()
        super().restore_scheduled_requests(requests_in_batch)
        self._sync()
        self.counters.swap_ins += len(restoring)
        self.counters.swap_in_bytes += nbytes
        self.counters.swap_seconds += time.perf_counter() - start

    def offload_requests(self) -> bool:
        """Starvation path (transformers decides when; our candidate order decides who: the worst starved)."""
        before = dict(self.scheduler.active_requests)
        result = super().offload_requests()
        for rid in before:
            if rid not in self.scheduler.active_requests and rid in self.scheduler.waiting_requests:
                self._count_preemption(self.scheduler.waiting_requests[rid])
        return result

    def _count_preemption(self, state: RequestState) -> None:
        swapped = state.is_cpu_offloaded
        self.counters.preemptions += 1
        self.counters.recomputes += 0 if swapped else 1
        self.on_preempted(state, swapped)

    # --- priority preemption ---------------------------------------------------------------------
    def preempt(self, victims: list[RequestState]) -> None:
        """Take the policy's victims off the device: to the host pool while it has room, else recompute."""
        allocators = self.cache.cache_allocators.items()
        tables = {s.request_id: {name: a.block_table.get(s.request_id, [])[:] for name, a in allocators}
                  for s in victims}
        for state in victims:
            self.cache.free_blocks(state.request_id, no_cache=True)
        swapped = self._offload_to_cpu(victims, tables)
        for state in victims:
            fresh = self._park(state) if state.request_id in swapped else recompute(state)
            self.scheduler.active_requests.pop(state.request_id, None)
            self.scheduler.add_waiting_request(fresh)
            self._count_preemption(fresh)

    @staticmethod
    def _park(state: RequestState) -> RequestState:
        """Swapped out: resume later from the same position (the pending token is re-processed on restore)."""
        state.allocated_blocks = 0
        if state._status == RequestStatus.DECODING:
            state.remaining_prefill_tokens = state.tokens_to_process[:]
        state._status = RequestStatus.PENDING
        return state

    # --- invariants ------------------------------------------------------------------------------
    def check_integrity(self, waiting_ids: set[str]) -> None:
        if self._cpu_pool is None:
            return
        for name, allocator in self.cache.cache_allocators.items():
            pool = self._cpu_pool
            total = self._num_cpu_sectors * allocator.blocks_per_sector
            free = len(pool.free_sectors) * allocator.blocks_per_sector
            free += pool.count_free_blocks(allocator.index)
            held = [b for rid, t in self._request_id_to_cpu_blocks.items() for b in t.get(name, [])]
            if len(set(held)) != len(held):
                raise AssertionError(f"host blocks held twice: {name}")
            if free + len(held) != total:
                raise AssertionError(f"host pool: free {free} + held {len(held)} != total {total}")
        leaked = set(self._request_id_to_cpu_blocks) - waiting_ids
        if leaked:
            raise AssertionError(f"host blocks held by requests not waiting: {sorted(leaked)[:5]}")
