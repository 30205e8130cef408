import os

import pytest

PROBE_LAYERS = (9, 14, 19, 29)  # what predictor/data/hidden.npz holds; `skipjoin engine` captures these


@pytest.fixture(scope="session")
def probe_engine(request):
    """The session's engine (its launcher adds the probe's hidden-state capture).
    SKIPJOIN_TEST_PROBE_ENGINE_URL reuses an engine someone started already (none is started)."""
    url = os.environ.get("SKIPJOIN_TEST_PROBE_ENGINE_URL")
    return url.rstrip("/") if url else request.getfixturevalue("vllm_engine").url
