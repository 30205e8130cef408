"""Per-request sampling and the digits-only constraint, as one continuous-batching logits processor.

The engine runs greedy (argmax) for everyone; rows that ask for sampling or for digits are rewritten
here, so greedy and sampled requests share a batch. Rows follow the batch's requests that get a new
token, in order (as transformers lays out `logits_indices`).
"""

from __future__ import annotations

import torch
from transformers.generation.continuous_batching.cb_logits_processors import ContinuousBatchingLogitsProcessor


def digit_token_ids(tokenizer) -> list[int]:
    """Tokens made only of ASCII digits (with or without a leading space marker)."""
    ids = []
    for token, tid in tokenizer.get_vocab().items():
        text = token.replace("Ġ", "").replace("▁", "")
        if text and text.isascii() and text.isdigit():
            ids.append(tid)
    return sorted(ids)


class RequestLogits(ContinuousBatchingLogitsProcessor):
    supported_kwargs = {"temperature": float, "top_p": float, "digits_only": bool, "seed": int}
    ignored_kwargs = ()

    def __init__(self, vocab_size: int, digit_ids: list[int], eos_ids: list[int]):
        self.allowed_digits = torch.zeros(vocab_size, dtype=torch.bool)
        self.allowed_digits[digit_ids + [e for e in eos_ids if 0 <= e < vocab_size]] = True
        self.rows: list[dict] = []  # the kwargs of each row of the coming batch
        self.generators: dict[str, torch.Generator] = {}

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.zero_()

    def prepare_tensor_args(self, requests_with_new_token) -> torch.Tensor:
        # Called on the host just before the forward: keep the rows here (no CUDA graphs in this engine).
        self.rows = [dict(r.state.logit_processor_kwargs, rid=r.state.request_id)
                     for r in requests_with_new_token]
        return torch.zeros(len(self.rows), dtype=torch.int32)

    def forget(self, rid: str) -> None:
        self.generators.pop(rid, None)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        for i, row in enumerate(self.rows[: scores.size(0)]):
            if row.get("digits_only"):
                mask = self.allowed_digits.to(scores.device)
                scores[i] = scores[i].masked_fill(~mask[: scores.size(1)], float("-inf"))
            if row.get("temperature", 0.0) > 0:
                scores[i] = self._sample_row(scores[i], row)
        return scores

    def _sample_row(self, logits: torch.Tensor, row: dict) -> torch.Tensor:
        probs = torch.softmax(logits.float() / row["temperature"], dim=-1)
        top_p = row.get("top_p", 1.0)
        if top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > top_p
            probs = probs.scatter(0, order, sorted_p.masked_fill(drop, 0.0))
        choice = torch.multinomial(probs, 1, generator=self._generator(row, logits.device))
        out = torch.full_like(logits, float("-inf"))
        out[choice] = 0.0  # argmax downstream picks the sampled token
        return out

    def _generator(self, row: dict, device: torch.device) -> torch.Generator | None:
        if row.get("seed") is None:
            return None
        gen = self.generators.get(row["rid"])
        if gen is None:
            gen = self.generators[row["rid"]] = torch.Generator(device=device).manual_seed(row["seed"])
        return gen
