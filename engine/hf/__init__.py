"""skipjoin inside Hugging Face transformers' continuous batching: scheduler, host swap, runner."""

from engine.hf.config import EngineConfig
from engine.hf.messages import GenerationRequest, TokenEvent
from engine.hf.runner import EngineRunner

__all__ = ["EngineConfig", "EngineRunner", "GenerationRequest", "TokenEvent"]
