"""Token ids → client text: incremental detokenization and stop strings.

Decoding token by token breaks multi-byte characters and merges (a byte-level BPE piece may be
half a character), so each step decodes a short window and emits only text that is settled — the
approach of vLLM's `detokenize_incrementally`. Stop strings are matched on the text: a tail that
could still grow into a stop string is held back until it cannot.
"""

from __future__ import annotations

from typing import Any

# Tokens decoded before the new ones, so merges with the previous piece come out right.
_CONTEXT = 6


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, prompt_ids: list[int] | None = None):
        self.tokenizer = tokenizer
        self.ids: list[int] = list((prompt_ids or [])[-_CONTEXT:])
        self.prefix_offset = 0
        self.read_offset = len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def add(self, token_ids: list[int]) -> str:
        """The newly settled text after appending `token_ids` ('' while a character is incomplete)."""
        self.ids.extend(token_ids)
        prefix = self._decode(self.ids[self.prefix_offset:self.read_offset])
        full = self._decode(self.ids[self.prefix_offset:])
        if len(full) <= len(prefix) or full.endswith("\ufffd"):
            return ""
        self.prefix_offset = max(self.read_offset, len(self.ids) - _CONTEXT)
        self.read_offset = len(self.ids)
        return full[len(prefix):]


class StopMatcher:
    """Cuts the text at the first stop string; holds back a tail that may start one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def _held_tail(self) -> int:
        """Length of the longest tail of `pending` that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), best, -1):
                if self.pending.endswith(stop[:n]):
                    best = n
                    break
        return best

    def feed(self, text: str) -> str:
        """Text safe to send now; after a stop string is seen, `stopped` is set and nothing follows."""
        if self.stopped:
            return ""
        self.pending += text
        cut = min((i for i in (self.pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self.pending = self.pending[:cut], ""
            return out
        keep = self._held_tail()
        out = self.pending[:len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep:]
        return out

    def flush(self) -> str:
        """At the end of generation the held tail can no longer become a stop string."""
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out


class TextStream:
    """Detokenizer and stop matcher together: `push(ids)` → text to send, `stopped` once cut."""

    def __init__(self, tokenizer: Any, stops: list[str], prompt_ids: list[int] | None = None):
        self.detok = IncrementalDetokenizer(tokenizer, prompt_ids)
        self.matcher = StopMatcher(stops)

    @property
    def stopped(self) -> bool:
        return self.matcher.stopped

    def push(self, token_ids: list[int]) -> str:
        return self.matcher.feed(self.detok.add(token_ids))

    def flush(self) -> str:
        return self.matcher.flush()
