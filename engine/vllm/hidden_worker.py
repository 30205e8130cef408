"""vLLM workers that tap the model for the hidden-state connector once it is loaded.

The tap must be set before the model is compiled (CPU: Dynamo + inductor) or its CUDA graphs are
captured, i.e. right after `load_model`; a worker class (`--worker-cls`) is the one place that runs
then without patching vLLM. The CPU build's worker is `HiddenCPUWorker` (`hidden_worker_cpu`).
"""

from __future__ import annotations

from vllm.v1.worker.gpu_worker import Worker

from engine.vllm.hidden_layers import HiddenLayers
from engine.vllm.hidden_tap import install_tap


class HiddenTapMixin:
    def load_model(self, *args, **kwargs) -> None:
        super().load_model(*args, **kwargs)  # type: ignore[misc]
        kv = self.vllm_config.kv_transfer_config  # type: ignore[attr-defined]
        if kv is None or kv.kv_connector != "HiddenStateConnector":
            raise ValueError("the probe worker needs --kv-transfer-config naming HiddenStateConnector")
        layers = HiddenLayers.from_config((kv.kv_connector_extra_config or {}).get("layers"))
        install_tap(self.model_runner, layers)  # type: ignore[attr-defined]


class HiddenGPUWorker(HiddenTapMixin, Worker):
    pass
