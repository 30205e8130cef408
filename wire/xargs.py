"""Per-request fields the gateway sends to an engine beside the OpenAI ones.

vLLM takes them in `vllm_xargs` (they reach the scheduler as `SamplingParams.extra_args`); the
OpenAI `priority` field carries the predicted length for engines that only order by priority.
"""

from __future__ import annotations

PREDICTED = "skipjoin_predicted"  # predicted output tokens (float), the MLFQ entry level's input
PROBE = "skipjoin_probe"  # 1: a prefill probe; the engine returns the hidden-state feature
PROBE_LAYER = "skipjoin_layer"  # decoder layer (from 0) whose last-token hidden state is returned
PROBE_RESULT = "skipjoin_hidden"  # key in the answer's `kv_transfer_params`: {"layers", "last"}

# Inline prediction: the real request itself is flagged; the engine reads the feature during its
# own prefill, predicts with the published model and re-levels the request (no separate probe).
PREDICT = "skipjoin_predict"  # the gateway's job id (names the result below)
PREDICT_PREFIX = "skipjoin_prefix"  # prefix-memory hash (predictor.prefix_memory) the engine fills
INLINE_RESULT = "skipjoin_inline"  # key in `kv_transfer_params`: {"predicted", "p90", "version"}
# A streamed answer has no `kv_transfer_params`: the engine (with a Redis URL) writes a hash under
# `skipjoin:inline:<job id>` instead, fields "hidden" (predictor.features.encode_hidden, JSON) and
# "result" (the JSON above); the gateway takes it for the request's training record.
INLINE_KEY_PREFIX = "skipjoin:inline:"
INLINE_TTL_S = 3600


def inline_key(job_id: str) -> str:
    return INLINE_KEY_PREFIX + job_id
