"""What the scheduler inside vLLM's engine process is told: environment variables, set by
`skipjoin engine` (vLLM creates the scheduler itself, so there is no other way in)."""

from __future__ import annotations

import json
import os
import socket

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.policy import PolicyConfig


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKIPJOIN_ENGINE_", extra="ignore", frozen=True)

    # JSON object of policy knobs (engine.policy.PolicyConfig fields) applied at start.
    policy_json: str = "{}"
    # The control plane: knobs written by the gateways' admin API, stats read by their dashboards.
    redis_url: str | None = None
    replica_id: str = Field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # GET/PUT /policy and GET /stats on this loopback port (0: none).
    control_port: int = 0
    control_host: str = "127.0.0.1"
    # Fit the policy's prices (step, decode and prefill time) to this engine's own steps.
    measure_costs: bool = True

    @field_validator("policy_json")
    @classmethod
    def _policy(cls, v: str) -> str:
        PolicyConfig().updated(json.loads(v))  # raises ValueError early, in the launcher
        return v

    @property
    def policy(self) -> PolicyConfig:
        return PolicyConfig().updated(json.loads(self.policy_json))

    @classmethod
    def from_env(cls) -> EngineSettings:
        return cls()
