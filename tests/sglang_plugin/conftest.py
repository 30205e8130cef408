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
    """The driver's clock, moved by hand so that aging is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def hooked():
    """(driver, clock): skipjoin's hooks applied to this process's SGLang, once."""
    import sgl_objects as sgl

    from engine.policy import PolicyConfig
    from engine.sglang.driver import Driver
    from engine.sglang.plugin import install

    sgl.publish_args()
    clock = Clock()
    return install(Driver(PolicyConfig(), clock=clock)), clock


@pytest.fixture
def driver(hooked):
    """The hooked driver with default knobs and fresh state; tests `configure` what they need."""
    import sgl_objects as sgl

    from engine.policy import PolicyConfig

    drv, clock = hooked
    sgl.publish_args()
    drv.configure(PolicyConfig())
    drv.admit, drv.victims = set(), []
    drv.stats = dict.fromkeys(drv.stats, 0)
    clock.now = 1000.0
    return drv


@pytest.fixture
def clock(hooked):
    return hooked[1]
