"""skipjoin's vLLM scheduler over vLLM's own classes, without a model runner: the model's config
comes from the real engine's folder (no weights are loaded); KV is 1,024 blocks of 16 tokens."""

from __future__ import annotations

import os
from contextlib import contextmanager

BLOCK, BLOCKS = 16, 1024


@contextmanager
def contract_env(**extra: str):
    """The engine's settings for a contract run: no control port, prices fixed (not measured)."""
    env = {"SKIPJOIN_ENGINE_MEASURE_COSTS": "false", "SKIPJOIN_ENGINE_CONTROL_PORT": "0", **extra}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_scheduler(slots: int):
    import torch
    from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
    from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
    from vllm.v1.structured_output import StructuredOutputManager

    from engine.model_folder import smollm2_folder
    from engine.vllm.scheduler import SkipJoinScheduler

    model = ModelConfig(model=str(smollm2_folder()), dtype="float32", seed=0, max_model_len=2048)
    sched = SchedulerConfig(max_num_seqs=slots, max_num_batched_tokens=2048, max_model_len=2048,
                            is_encoder_decoder=False, enable_chunked_prefill=True, policy="priority")
    cache = CacheConfig(block_size=BLOCK, cache_dtype="auto", enable_prefix_caching=False)
    cache.num_gpu_blocks = BLOCKS
    config = VllmConfig(model_config=model, scheduler_config=sched, cache_config=cache)
    spec = FullAttentionSpec(block_size=BLOCK, num_kv_heads=1, head_size=1, dtype=torch.float32)
    groups = [KVCacheGroupSpec(["layer"], spec)]
    kv = KVCacheConfig(num_blocks=BLOCKS, kv_cache_tensors=[], kv_cache_groups=groups)
    return SkipJoinScheduler(vllm_config=config, kv_cache_config=kv, block_size=BLOCK,
                             structured_output_manager=StructuredOutputManager(config))
