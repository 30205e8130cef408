"""The probe's answer read the same from either engine: skipjoin's vLLM and SGLang."""

from predictor.base import PredictRequest
from predictor.features import hidden_from_response
from predictor.probes import prefill_body

MESSAGES = [{"role": "user", "content": "Hello"}]


def test_the_probe_body_asks_both_engines():
    _, body = prefill_body(PredictRequest("Hello", MESSAGES), [19])
    assert body["vllm_xargs"] == {"skipjoin_probe": 1, "skipjoin_layer": 19}
    assert body["return_hidden_states"] == "last" and body["max_tokens"] == 1


def test_vllm_answer():
    body = {"choices": [{"text": "x"}],
            "kv_transfer_params": {"skipjoin_hidden": {"layers": [19], "last": [[0.5, -1.0]]}}}
    assert hidden_from_response(body, [19]) == {"layers": [19], "last": [[0.5, -1.0]], "mean": None}


def test_sglang_last_mode_answer_is_one_vector():
    body = {"choices": [{"message": {"content": "x"}, "hidden_states": [0.5, -1.0, 2.0]}]}
    assert hidden_from_response(body, [19]) == {"layers": [19], "last": [[0.5, -1.0, 2.0]], "mean": None}


def test_sglang_per_token_answer_has_a_mean():
    body = {"meta_info": {"hidden_states": [[[1.0, 0.0], [3.0, 2.0]]]}}
    got = hidden_from_response(body, [14])
    assert got == {"layers": [14], "last": [[3.0, 2.0]], "mean": [[2.0, 1.0]]}
