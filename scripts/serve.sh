#!/usr/bin/env bash
# Sets up .venv (idempotent) and runs the gateway on its embedded defaults:
# a local Redis, the built-in CPU engine with SmolLM2-135M-Instruct, the gateway on :8000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false
exec .venv/bin/skipjoin serve "$@"
