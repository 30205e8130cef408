"""The probe's layer bookkeeping and launcher flags (no engine: the engine tests are in test_probe_engine)."""

import json

import pytest

from engine.vllm.hidden_layers import HiddenLayers, requested_layers
from engine.vllm.hidden_meta import CapturedMeta, last_prompt_slot
from engine.vllm.probe import CPU_WORKER, GPU_WORKER, probe_engine_args, probe_engine_env
from wire.xargs import PROBE, PROBE_LAYER


def test_layer_k_is_aux_id_k_plus_one_and_index_follows_the_sorted_set():
    layers = HiddenLayers.from_config([19, 9, 29, 14, 19])
    assert layers.layers == (9, 14, 19, 29)
    assert layers.aux_ids == (10, 15, 20, 30)
    assert layers.aux_index((19,)) == (2,) and layers.aux_index((29, 9)) == (3, 0)
    assert HiddenLayers.from_config(19).layers == (19,)


@pytest.mark.parametrize("raw", [None, [], "19", [-1]])
def test_bad_layer_config_is_a_clear_value_error(raw):
    with pytest.raises(ValueError, match="layer"):
        HiddenLayers.from_config(raw)


def test_requested_layers_from_vllm_xargs():
    captured = HiddenLayers((9, 19))
    assert requested_layers({}, captured) is None
    assert requested_layers({PROBE: 0, PROBE_LAYER: 19}, captured) is None
    assert requested_layers({PROBE: "false"}, captured) is None
    assert requested_layers({PROBE: 1, PROBE_LAYER: 19}, captured) == (19,)
    assert requested_layers({PROBE: "1", PROBE_LAYER: "9"}, captured) == (9,)
    assert requested_layers({PROBE: 1, PROBE_LAYER: [19, 9]}, captured) == (19, 9)
    assert requested_layers({PROBE: 1}, captured) == (9, 19)  # no layer named: every captured one
    assert "not captured" in requested_layers({PROBE: 1, PROBE_LAYER: 5}, captured)
    assert "integer" in requested_layers({PROBE: 1, PROBE_LAYER: "x"}, captured)


def test_last_prompt_slot_is_block_id_times_size_plus_offset():
    # 40 prompt tokens in blocks of 16: the last (index 39) is offset 7 of the third block (id 12).
    assert last_prompt_slot([5, 9, 12], 16, 40) == 12 * 16 + 7
    assert last_prompt_slot([3], 16, 16) == 3 * 16 + 15


def test_tensor_parallel_ranks_aggregate_to_one_vector_per_request():
    a, b = CapturedMeta({"r1": [[1.0]]}), CapturedMeta({"r1": [[1.0]], "r2": [[2.0]]})
    assert a.aggregate(b).vectors == {"r1": [[1.0]], "r2": [[2.0]]}


def test_launcher_flags_name_the_connector_the_worker_and_cached_token_details():
    args = probe_engine_args(19, cpu=True)
    cfg = json.loads(args[args.index("--kv-transfer-config") + 1])
    assert cfg["kv_connector"] == "HiddenStateConnector" and cfg["kv_connector_extra_config"] == {
        "layers": [19]
    }
    assert args[args.index("--worker-cls") + 1] == CPU_WORKER
    assert "--enable-prompt-tokens-details" in args
    # the compile-cache key must differ from a plain engine's: the graph has extra outputs
    assert json.loads(args[args.index("--additional-config") + 1]) == {"skipjoin_hidden_layers": [19]}
    gpu = probe_engine_args([29, 9], cpu=False)
    assert gpu[gpu.index("--worker-cls") + 1] == GPU_WORKER
    assert json.loads(gpu[1])["kv_connector_extra_config"] == {"layers": [9, 29]}
    assert probe_engine_env() == {"VLLM_USE_V2_MODEL_RUNNER": "0"}  # the tap hooks the V1 runner
