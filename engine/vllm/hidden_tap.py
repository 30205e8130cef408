"""The tap: the model emits the captured layers as aux hidden states, and each forward hands them
to the hidden-state connector (which keeps only the rows of this step's probes).

Installed right after the model loads, before it is compiled or its CUDA graphs are captured, so
the extra outputs are part of the graph. The connector itself only exists later (it needs the KV
cache layout), so it is looked up at each forward.
"""

from __future__ import annotations

from vllm.distributed.kv_transfer import get_kv_transfer_group, has_kv_transfer_group

from engine.vllm.hidden_layers import HiddenLayers


def install_tap(model_runner, layers: HiddenLayers) -> None:
    model = model_runner.get_model()
    if not hasattr(model, "set_aux_hidden_state_layers"):
        raise ValueError(f"{type(model).__name__} has no aux hidden-state outputs (EAGLE-3 interface)")
    model.set_aux_hidden_state_layers(layers.aux_ids)
    model_runner.use_aux_hidden_state_outputs = True  # the runner then unpacks (hidden, aux) itself
    forward = model_runner._model_forward  # documented as the override point for model execution

    def forward_and_capture(*args, **kwargs):
        out = forward(*args, **kwargs)
        if isinstance(out, tuple) and has_kv_transfer_group():
            capture = getattr(get_kv_transfer_group(), "capture", None)
            if capture is not None:
                capture(out[1])
        return out

    model_runner._model_forward = forward_and_capture
