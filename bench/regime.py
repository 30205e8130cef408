"""The regime a speed claim is made in, shared by `bench.peer` (live) and `bench.peer_sim`.

A scheduler's gain depends on three things, so every figure names them:
- length shapes (`LENGTHS`): public traces' shapes scaled to a 2,048-token context on this box;
- the engine's memory: a KV budget in blocks, reported as how many requests of the workload's mean
  context it holds (`requests_worth`), and a slot limit;
- load: an arrival rate as a fraction of the capacity measured in the same run (`sustained_rps`:
  requests/s that plain vLLM completes while busy, with everything queued at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK_TOKENS = 32  # the CPU engine's KV block (`engine.vllm.launch`)
TEMPLATE_TOKENS = 31  # SmolLM2's chat template (default system turn + tags) around each prompt


@dataclass(frozen=True)
class Lengths:
    mean_prompt: float
    prompt_cv: float
    prompt_max: int
    mean_output: float
    max_output: int
    note: str


# Output CVs are the workload's (heavy 2.0, light 0.7); these set the means and bounds.
LENGTHS = {
    # bench.peer's first runs: everything fits in the engine at once (the do-no-harm check).
    "short": Lengths(64, 0.5, 1024, 48, 512, "short chat, 64-token prompts, 48-token answers"),
    # ShareGPT's shape (Kwon et al.: prompt 161, output 338) at half the answer length.
    "chat": Lengths(200, 0.5, 1024, 160, 1024, "ShareGPT-like chat: 200-token prompts, 160-token answers"),
    # Azure's LLM conversation trace: prompts ~5x the answer (1,150 / 210), scaled by 0.6.
    "long-chat": Lengths(700, 0.7, 1500, 128, 512, "long-prompt chat (Azure conversation shape)"),
    # Code completion: long prompts, answers of a few tokens (2,050 / ~13-24), scaled by 0.6.
    "code": Lengths(1200, 0.6, 1800, 24, 240, "prefill-heavy code completion"),
}


def mean_context(lengths: Lengths) -> float:
    """KV a request holds on average over its life: prompt (with the template) plus half its answer."""
    return lengths.mean_prompt + TEMPLATE_TOKENS + lengths.mean_output / 2


def blocks_for(requests: float, lengths: Lengths) -> int:
    """KV blocks that hold about `requests` requests of the workload's mean context."""
    return max(1, math.ceil(requests * mean_context(lengths) / BLOCK_TOKENS))


def requests_worth(blocks: int, lengths: Lengths) -> float:
    return blocks * BLOCK_TOKENS / mean_context(lengths)


def load_label(name: str, load: float | None) -> str:
    return name if load is None else f"{name}@{load:g}"


def split_label(label: str) -> tuple[str, float | None]:
    name, _, load = label.partition("@")
    return name, (float(load) if load else None)


def sustained_rps(first: np.ndarray, done: np.ndarray, output_len: np.ndarray) -> float:
    """Requests/s the engine sustains while requests wait, from a run with everything queued at
    once (times from the start): answer tokens produced until the last request got its first token
    (the batch was full until then), over that time, divided by the mean answer. The whole run's
    makespan would understate it (the heavy tail's last answers run alone at a tiny batch), the
    first completions overstate it (the short answers in the batch finish first)."""
    first, done = np.asarray(first, dtype=float), np.asarray(done, dtype=float)
    out = np.asarray(output_len, dtype=float)
    ok = ~np.isnan(first) & ~np.isnan(done)
    if not ok.any():
        return float("nan")
    first, done, out = first[ok], done[ok], out[ok]
    until = first.max()
    share = np.clip((until - first) / np.maximum(done - first, 1e-9), 0.0, 1.0)
    return float((out * share).sum() / until / out.mean()) if until > 0 else float("nan")
