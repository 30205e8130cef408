#!/usr/bin/env bash
# Sets up .venv (idempotent) and runs the whole test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system_deps.sh
export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false
.venv/bin/python -m pytest -q "$@"
# SGLang's CPU scheduler tests in their own venv (its pins clash with vLLM's); tests/sglang_plugin skips itself above.
bash scripts/setup_sglang.sh && exec .venv-sglang/bin/python -m pytest tests/sglang_plugin -q
