import os

import pytest

PROBE_LAYERS = (9, 14, 19, 29)  # what predictor/data/hidden.npz holds


@pytest.fixture(scope="session")
def probe_engine(tmp_path_factory):
    """skipjoin's engine with the prefill probe's hidden-state capture, once per session.

    Until the launcher adds the probe flags itself (engine.vllm.probe.probe_engine_args), they are
    passed through. SKIPJOIN_TEST_PROBE_ENGINE_URL reuses an engine someone started already.
    """
    url = os.environ.get("SKIPJOIN_TEST_PROBE_ENGINE_URL")
    if url:
        yield url.rstrip("/")
        return
    from engine.vllm.probe import probe_engine_args, probe_engine_env
    from tests.vllm_engine import start_engine, stop_engine

    log = str(tmp_path_factory.mktemp("probe_engine") / "vllm.log")
    engine = start_engine(log, extra=tuple(probe_engine_args(PROBE_LAYERS)), env=probe_engine_env())
    try:
        yield engine.url
    finally:
        stop_engine(engine)
