"""A queued request as plain data, and its wire form in Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

FORCED = "forced"  # `Job.predictor` when `ignore_eos` fixes the length: known, nothing to learn


@dataclass
class Job:
    id: str
    kind: str  # "chat" or "completions": the upstream route
    body: dict[str, Any]  # the upstream request body (client fields + priority)
    stream: bool
    include_usage: bool  # the client asked for the usage chunk
    predicted: float
    p90: float
    predictor: str
    cls: str
    tenant: str
    prompt_hash: str  # sha256 of the prompt text (records)
    prefix_key: str  # hash of the prompt's first characters (prefix affinity)
    front: str  # id of the gateway process holding the client
    enqueued_at: float  # score clock (score.py)
    enqueued_wall: float  # wall clock, for queue wait / TTFT records
    score: float  # stored ZSET score
    bucket: str
    features: dict[str, Any] = field(default_factory=dict)
    home: str = ""  # replica the predictor's probe used (its prefix cache is warm there)
    attempts: int = 0
    request_id: str = ""  # the client's X-Request-Id (or the gateway's), sent on to the engine

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.kind == "chat" else "/v1/completions"

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def max_tokens(self) -> int | None:
        value = self.body.get("max_completion_tokens", self.body.get("max_tokens"))
        return None if value is None else int(value)

    def dumps(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | bytes, attempts: int = 0) -> Job:
        job = cls(**json.loads(text))
        job.attempts = attempts
        return job
