"""Hidden states of chosen decoder layers for chosen requests, read off the packed batch.

Continuous batching flattens every request of a step into one sequence; the runner tells the tap
which slice of rows belongs to whom before each forward. Prompts may be prefilled in chunks, so the
mean is accumulated across chunks; the last prompt row is kept when the prompt's final chunk runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class _Acc:
    layers: list[int]
    prompt_len: int
    sums: dict[int, torch.Tensor] = field(default_factory=dict)
    last: dict[int, torch.Tensor] = field(default_factory=dict)
    seen: int = 0


@dataclass(frozen=True)
class Slice:
    rid: str
    start: int
    length: int
    ends_prompt: bool


class HiddenTap:
    def __init__(self, decoder_layers: torch.nn.ModuleList):
        self.accs: dict[str, _Acc] = {}
        self.slices: list[Slice] = []
        self.handles = [layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(decoder_layers)]

    def close(self) -> None:
        for h in self.handles:
            h.remove()

    def want(self, rid: str, layers: list[int], prompt_len: int) -> None:
        self.accs[rid] = _Acc(layers, prompt_len)

    def reset(self, rid: str) -> None:
        """A recomputed request prefills again from the start."""
        acc = self.accs.get(rid)
        if acc is not None:
            self.accs[rid] = _Acc(acc.layers, acc.prompt_len)

    def set_batch(self, rows: list[tuple[str, int, bool]]) -> None:
        """(rid, query length, last chunk of the prompt) for every request of the coming forward, in order."""
        self.slices, start = [], 0
        for rid, length, ends in rows:
            acc = self.accs.get(rid)
            if acc is not None and acc.seen < acc.prompt_len:
                self.slices.append(Slice(rid, start, length, ends))
            start += length

    def _hook(self, layer: int):
        def hook(module, args, output):
            if not self.slices:
                return
            hidden = output[0] if isinstance(output, tuple) else output  # [1, tokens, hidden]
            for s in self.slices:
                acc = self.accs.get(s.rid)  # gone if cancelled meanwhile
                if acc is None or layer not in acc.layers:
                    continue
                rows = hidden[0, s.start:s.start + s.length].float()
                acc.sums[layer] = acc.sums.get(layer, 0) + rows.sum(0)
                if s.ends_prompt:
                    acc.last[layer] = rows[-1].clone()
        return hook

    def after_forward(self) -> None:
        for s in self.slices:
            acc = self.accs.get(s.rid)
            if acc is not None:
                acc.seen += s.length
        self.slices = []

    def pop(self, rid: str) -> dict | None:
        """The result once the prompt is fully seen: {"layers", "last", "mean"} (lists of floats)."""
        acc = self.accs.get(rid)
        if acc is None or not acc.last:
            return None
        del self.accs[rid]
        return {
            "layers": acc.layers,
            "last": [acc.last[k].cpu().tolist() for k in acc.layers],
            "mean": [(acc.sums[k] / max(acc.seen, 1)).cpu().tolist() for k in acc.layers],
        }
