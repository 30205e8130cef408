"""The CPU build's probe worker (a separate module: the GPU build need not import the CPU worker)."""

from __future__ import annotations

from vllm.v1.worker.cpu_worker import CPUWorker

from engine.vllm.hidden_worker import HiddenTapMixin


class HiddenCPUWorker(HiddenTapMixin, CPUWorker):
    pass
