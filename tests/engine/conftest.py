import os

import pytest
import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def make_runner():
    """Build started EngineRunners; all are stopped at teardown."""
    from engine.hf import EngineConfig, EngineRunner

    made = []

    def make(policy=None, **config):
        runner = EngineRunner(EngineConfig(**{"model": "tiny", **config}), policy)
        runner.start()
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop()


def random_prompts(n: int, lo: int = 20, hi: int = 70, seed: int = 0) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(100, 40000) for _ in range(rng.randrange(lo, hi))] for _ in range(n)]


@pytest.fixture(scope="session")
def prompts():
    return random_prompts
