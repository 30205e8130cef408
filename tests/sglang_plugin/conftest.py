"""SGLang's real scheduler objects on CPU, with skipjoin's hooks applied once for this process.

These tests run in `.venv-sglang` (scripts/setup_sglang.sh; SGLang's pins clash with vLLM's), as
`scripts/test.sh` does after the main suite; elsewhere the folder is not collected. Hooks cannot be
un-applied: every test here expects the patched scheduler, and anything that needs a stock one (or
a different SGLang version) runs in a subprocess.
"""

import importlib.metadata

import pytest


def _sglang_installed() -> bool:
    # The installed distribution, not an importable name (a folder on sys.path can pass for one).
    try:
        importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


collect_ignore_glob = [] if _sglang_installed() else ["*"]


class Clock:
    """A wall clock moved by hand: the driver reads one only to measure step times."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def hooked():
    """skipjoin's hooks applied to this process's SGLang, once (they call the active driver)."""
    import sgl_objects as sgl

    from engine.policy import PolicyConfig
    from engine.sglang.driver import Driver
    from engine.sglang.plugin import install

    sgl.publish_args()
    return install(Driver(PolicyConfig(), clock=Clock()))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def driver(hooked, clock):
    """A fresh driver with default knobs, the one the hooks call; tests `configure` what they need."""
    import sgl_objects as sgl

    from engine.policy import PolicyConfig
    from engine.sglang.driver import Driver
    from engine.sglang.plugin import install

    sgl.publish_args()
    return install(Driver(PolicyConfig(), clock=clock))
