"""Per-request fields the gateway sends to an engine beside the OpenAI ones.

vLLM takes them in `vllm_xargs` (they reach the scheduler as `SamplingParams.extra_args`); the
OpenAI `priority` field carries the predicted length for engines that only order by priority.
"""

from __future__ import annotations

PREDICTED = "skipjoin_predicted"  # predicted output tokens (float), the MLFQ entry level's input
PROBE = "skipjoin_probe"  # 1: a prefill probe; the engine returns the hidden-state feature
PROBE_LAYER = "skipjoin_layer"  # decoder layer (from 0) whose last-token hidden state is returned
PROBE_RESULT = "skipjoin_hidden"  # key in the answer's `kv_transfer_params`: {"layers", "last"}
