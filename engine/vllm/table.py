"""vLLM requests as the policy sees them: one `SeqState` per live request id."""

from __future__ import annotations

from collections.abc import Iterable

from vllm.v1.request import Request

from engine.policy import Phase, Policy, SeqState
from wire import xargs


def predicted_len(request: Request, use_priority: bool = True) -> float | None:
    """The gateway's prediction: `vllm_xargs.skipjoin_predicted`; for an old gateway without it,
    the OpenAI `priority` it sent (read only on arrival: the adapter later writes `priority`
    itself, as the rank of `running`); None when neither was given."""
    extra = request.sampling_params.extra_args if request.sampling_params else None
    if extra and extra.get(xargs.PREDICTED) is not None:
        try:
            return max(float(extra[xargs.PREDICTED]), 0.0)
        except (TypeError, ValueError):
            return None
    return float(request.priority) if use_priority and request.priority > 0 else None


class SeqTable:
    def __init__(self, policy: Policy):
        self.policy = policy
        self.seqs: dict[str, SeqState] = {}

    def add(self, request: Request, now: float, arrived: bool = True) -> SeqState:
        """`arrived=False`: a request met later than its arrival, whose `priority` may be a rank."""
        seq = SeqState(request.request_id, now, request.num_prompt_tokens, predicted_len(request, arrived),
                       request.max_tokens)
        self.policy.on_arrival(seq, now)
        self.seqs[request.request_id] = seq
        return seq

    def get(self, request: Request) -> SeqState | None:
        return self.seqs.get(request.request_id)

    def sync_tokens(self, requests: Iterable[Request], now: float) -> None:
        """Tell the policy about tokens generated since the last step."""
        for request in requests:
            seq = self.seqs.get(request.request_id)
            if seq is None:
                continue
            new = request.num_output_tokens - seq.generated
            if new > 0:
                self.policy.on_tokens(seq, new, now)

    def predict(self, request_id: str, predicted: float, now: float) -> None:
        """A prediction made after arrival (inline, from the request's own prefill)."""
        seq = self.seqs.get(request_id)
        if seq is not None:
            self.policy.on_prediction(seq, predicted, now)

    def finish(self, request_id: str, now: float) -> None:
        seq = self.seqs.pop(request_id, None)
        if seq is not None:
            self.policy.on_finish(seq, now)

    def levels(self, n: int) -> list[int]:
        """Live requests per MLFQ level, top level first (what the dashboard shows)."""
        counts = [0] * n
        for seq in self.seqs.values():
            if seq.phase is not Phase.FINISHED:
                counts[min(seq.level, n - 1)] += 1
        return counts
