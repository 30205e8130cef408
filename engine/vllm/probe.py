"""What the launcher adds to vLLM so a prefill probe returns its hidden state (and how to read it).

A probe is an ordinary completion flagged in `vllm_xargs` (`skipjoin_probe: 1`, `skipjoin_layer: k`)
with `max_tokens: 1`. The answer carries `kv_transfer_params.skipjoin_hidden =
{"layers": [k], "last": [[...hidden floats...]]}`: layer k's output at the last prompt token.
`--enable-prompt-tokens-details` makes the real request's `cached_tokens` show the probe's reuse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from engine.vllm.hidden_layers import HiddenLayers
from wire.xargs import PROBE_RESULT as RESULT_KEY

CONNECTOR = "HiddenStateConnector"
CONNECTOR_MODULE = "engine.vllm.hidden_connector"
CPU_WORKER = "engine.vllm.hidden_worker_cpu.HiddenCPUWorker"
GPU_WORKER = "engine.vllm.hidden_worker.HiddenGPUWorker"

__all__ = ["RESULT_KEY", "probe_engine_args", "probe_engine_env", "kv_transfer_config"]


def kv_transfer_config(layers: Sequence[int]) -> dict:
    return {
        "kv_connector": CONNECTOR,
        "kv_connector_module_path": CONNECTOR_MODULE,
        "kv_role": "kv_producer",
        "kv_connector_extra_config": {"layers": list(HiddenLayers.from_config(list(layers)).layers)},
    }


def probe_engine_args(layer: int | Sequence[int], cpu: bool | None = None) -> list[str]:
    """vLLM CLI flags that capture `layer` (one or several) for flagged probes.

    `cpu`: the build's platform; None asks vLLM (importing its platform module, not the engine).
    """
    layers = [layer] if isinstance(layer, int) else list(layer)
    if cpu is None:
        from vllm.platforms import current_platform

        cpu = current_platform.is_cpu()
    kv = kv_transfer_config(layers)
    return [
        "--kv-transfer-config",
        json.dumps(kv),
        "--worker-cls",
        CPU_WORKER if cpu else GPU_WORKER,
        "--enable-prompt-tokens-details",
        # The tap changes the compiled graph's outputs, but neither the KV-transfer config nor the
        # worker class is in vLLM's compile-cache key: this is, so no plain engine's cached graph
        # is loaded here (nor ours there).
        "--additional-config",
        json.dumps({"skipjoin_hidden_layers": kv["kv_connector_extra_config"]["layers"]}),
    ]


def probe_engine_env() -> dict[str, str]:
    """Environment the engine needs for the probe (besides `engine` being importable).

    The tap wraps the V1 model runner's `_model_forward`; on GPU builds with Triton vLLM 0.32
    defaults to Model Runner V2, which has no such hook, so V1 is asked for (the CPU build always
    runs V1).
    """
    return {"VLLM_USE_V2_MODEL_RUNNER": "0"}
