"""Engine configuration: one frozen dataclass, validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from engine.policy import POLICY_NAMES

CPU_DEFAULT_BLOCKS = 256  # 8k tokens at block 32: a CPU has no memory probe worth trusting


@dataclass(frozen=True)
class EngineConfig:
    model: str = "smollm2"  # smollm2 | tiny | random-7b | a local HF folder
    device: str = "cpu"
    max_batch: int = 16  # requests per step
    num_blocks: int | None = None  # device KV blocks; None: 256 on CPU, what memory allows on CUDA
    block_size: int = 32  # tokens per KV block (the prefix-cache granularity)
    host_pool_blocks: int | None = None  # host swap blocks; None: as many as the device holds
    max_tokens_default: int = 256
    scheduler: str = "mlfq"  # a policy name (engine.policy), or "fifo": transformers' own scheduler
    max_batch_tokens: int = 512  # query tokens per step: longer prompts are prefilled in chunks

    def __post_init__(self) -> None:
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device must be cpu or cuda[:N], got {self.device!r}")
        if self.max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        if self.num_blocks is not None and self.num_blocks < 2:
            raise ValueError("num_blocks must be >= 2 or None")
        if self.block_size < 1 or self.block_size & (self.block_size - 1):
            raise ValueError("block_size must be a power of two")
        if self.host_pool_blocks is not None and self.host_pool_blocks < 0:
            raise ValueError("host_pool_blocks must be >= 0 or None")
        if self.max_tokens_default < 0:
            raise ValueError("max_tokens_default must be >= 0")
        if self.scheduler not in (*POLICY_NAMES, "fifo"):
            raise ValueError(f"scheduler must be one of {(*POLICY_NAMES, 'fifo')}, got {self.scheduler!r}")
        if self.max_batch_tokens < self.max_batch:
            raise ValueError("max_batch_tokens must be >= max_batch")

    @property
    def device_blocks(self) -> int | None:
        if self.num_blocks is None and self.device == "cpu":
            return CPU_DEFAULT_BLOCKS
        return self.num_blocks
