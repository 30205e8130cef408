"""A preempted request's KV checkpointed into the radix tree instead of dropped.

Stock `schedule_batch.release_req` frees it (`checkpoint=False`) and recomputes on resume. Here the
tree keeps it: re-admission is a prefix hit, and with HiCache (`--enable-hierarchical-cache`,
write-back) an evicted checkpoint goes to host memory and is loaded back — the host swap tier.
The stock function also evicts right after releasing, for decode retraction's instant reuse; that
would throw a fresh checkpoint away under tight memory, so it is skipped: allocation evicts on
demand (least recently used first, and the checkpoint is the most recent), HiCache to host.
"""

from __future__ import annotations

from typing import Any


def can_checkpoint(tree_cache: Any) -> bool:
    """A tree that keys KV, holds no model state (mamba) and is not disaggregated decode's."""
    from sglang.srt.managers import schedule_batch

    if getattr(tree_cache, "disable", False) or tree_cache.supports_mamba():
        return False
    if not tree_cache.supports_prefix_sharing():
        return False
    return schedule_batch.get_disagg().disaggregation_mode != "decode"


def has_host_tier(tree_cache: Any) -> bool:
    """HiCache in cache mode: evicted tree nodes go to host memory and are loaded back."""
    return getattr(tree_cache, "cache_controller", None) is not None and \
        getattr(tree_cache, "host_memory_mode", "cache") == "cache"


def checkpoint_release(req: Any, tree_cache: Any, hisparse_coordinator: Any) -> int:
    """Release `req` for preemption keeping its KV in the tree; the KV tokens kept."""
    from sglang.srt.mem_cache.common import release_kv_cache

    if hisparse_coordinator is not None and not req.finished():
        hisparse_coordinator.retract_req(req)
    kept = 0 if req.skip_radix_cache_insert else req.owned_kv_len()
    release_kv_cache(req, tree_cache, checkpoint=True)
    req.reset_for_retract()
    return kept


def matches_waiting(tree_cache: Any) -> bool:
    """Does `calc_priority` match the waiting queue against the tree (fcfs matches only where the
    tree matches fast)? Where it does not, a waiting request's `prefix_len` is stale."""
    return bool(tree_cache.supports_fast_match_prefix())


def match_prefix(req: Any, tree_cache: Any) -> None:
    """What the tree holds of `req` now, as SGLang's admission loop matches it before each try."""
    req.init_next_round_input(tree_cache)


def releasable_kv(victim: Any, staying: list[Any], released: list[Any]) -> int:
    """Device KV tokens that releasing `victim` makes free or evictable: its own KV less the tree
    prefix that requests staying in the batch still lock, and less what `released` (victims
    already counted) share with it. Tree paths are prefixes, so each overlap is a common prefix."""
    own = int(victim.kv.kv_committed_len)
    locked = int(victim.kv.cache_protected_len or 0)
    overlap = 0
    for other in (*staying, *released):
        bound = min(locked, int(other.kv.cache_protected_len or 0))
        if bound > overlap:
            overlap = max(overlap, _common_prefix(victim, other, bound))
    return max(own - overlap, 0)


def _tokens(req: Any, n: int) -> list[int]:
    prompt = req.origin_input_ids
    if n <= len(prompt):
        return list(prompt[:n])
    return list(prompt) + list(req.output_ids[:n - len(prompt)])


def _common_prefix(a: Any, b: Any, bound: int) -> int:
    """Length of the common prefix of two requests' tokens, up to `bound` (binary search on
    slices: the comparisons run in C)."""
    x, y = _tokens(a, bound), _tokens(b, bound)
    lo, hi = 0, min(len(x), len(y))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if x[:mid] == y[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
