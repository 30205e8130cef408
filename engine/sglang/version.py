"""The one SGLang release the plugin was written against.

Its hooks name private functions and read private fields that move between releases, so any other
version is refused before a single patch is made.
"""

from __future__ import annotations

SGLANG_VERSION = "0.5.23"


class SGLangVersionError(RuntimeError):
    """Raised instead of patching an SGLang release the plugin was not written for."""


def check_version(found: str) -> None:
    if found != SGLANG_VERSION:
        raise SGLangVersionError(
            f"skipjoin's SGLang plugin is written for sglang=={SGLANG_VERSION}, found sglang=={found}; "
            f"refusing to patch it (install sglang=={SGLANG_VERSION}, e.g. `pip install skipjoin[sglang]`)"
        )


def installed_version() -> str:
    from sglang.version import __version__

    return __version__
