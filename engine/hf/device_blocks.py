"""Device KV blocks: transformers' `PagedAttentionCache` owns them; these read-only views count them."""

from __future__ import annotations

from transformers.generation.continuous_batching.cache import PagedAttentionCache


def free_blocks(cache: PagedAttentionCache) -> int:
    """Blocks a new request could get now, counting unreferenced prefix-cache blocks (evictable)."""
    n = 0
    for allocator in cache.cache_allocators.values():
        n += len(cache.pool.free_sectors) * allocator.blocks_per_sector
        n += cache.pool.count_free_blocks(allocator.index) + len(allocator.ledger.cached_blocks)
    return n // max(len(cache.cache_allocators), 1)


def cached_blocks(cache: PagedAttentionCache) -> int:
    return sum(len(a.ledger.cached_blocks) for a in cache.cache_allocators.values())


def total_blocks(cache: PagedAttentionCache) -> int:
    return sum(cache.pool.num_sectors * a.blocks_per_sector for a in cache.cache_allocators.values())


def used_blocks(cache: PagedAttentionCache) -> int:
    """Blocks referenced by some request's block table (shared blocks counted once)."""
    return sum(len({b for t in a.block_table.values() for b in t}) for a in cache.cache_allocators.values())


def check_integrity(cache: PagedAttentionCache, active_ids: set[str]) -> None:
    """free + referenced + cached == total for every allocator, and only live requests hold blocks."""
    for name, allocator in cache.cache_allocators.items():
        total = cache.pool.num_sectors * allocator.blocks_per_sector
        free = len(cache.pool.free_sectors) * allocator.blocks_per_sector
        free += cache.pool.count_free_blocks(allocator.index)
        referenced = {b for t in allocator.block_table.values() for b in t}
        cached = set(allocator.ledger.cached_blocks)
        if referenced & cached:
            both = sorted(referenced & cached)[:5]
            raise AssertionError(f"{name}: blocks both referenced and cached: {both}")
        if free + len(referenced) + len(cached) != total:
            raise AssertionError(
                f"{name}: free {free} + referenced {len(referenced)} + cached {len(cached)} != total {total}")
        leaked = set(allocator.block_table) - active_ids
        if leaked:
            raise AssertionError(f"{name}: blocks held by requests that are not active: {sorted(leaked)[:5]}")
