"""The entry point as SGLang's own `load_plugins()` finds and runs it, in fresh processes (hooks
cannot be un-applied): whole, or the process ends with the reason in one line — SGLang itself
would log the plugin's exception and serve stock scheduling."""

import json
import subprocess
import sys

import pytest

from engine.sglang.plugin import TARGETS
from engine.sglang.version import SGLANG_VERSION, SGLangVersionError, check_version

# Pretends the installed SGLang is `argv[1]`, optionally removes the hook target `argv[2]` (a
# release that moved it), runs every installed general plugin, reports what is patched.
SCRIPT = """
import json, logging, pkgutil, sys
import sglang.version
sglang.version.__version__ = sys.argv[1]
if len(sys.argv) > 2:
    owner, name = sys.argv[2].rsplit(".", 1)
    delattr(pkgutil.resolve_name(owner), name)
from sglang.srt.plugins import load_plugins
from sglang.srt.plugins.hook_registry import HookRegistry
logging.basicConfig(level=logging.ERROR)
load_plugins()
print(json.dumps({"patched": sorted(HookRegistry._patched), "hooks": len(HookRegistry._hooks)}))
"""

# SGLang's launcher path: a scheduler process spawned as `_launch_subprocesses` does, and the
# parent's wait for it to report ready. The plugin runs first thing in `run_scheduler_process`.
LAUNCH = """
import multiprocessing as mp
from sglang.srt.entrypoints.engine import _wait_for_scheduler_ready
from sglang.srt.managers.scheduler import run_scheduler_process
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=run_scheduler_process, args=(None, None, 0, 0, 0, None, writer))
    proc.start()
    writer.close()
    try:
        _wait_for_scheduler_ready([reader], [proc])
        print("ready")
    except RuntimeError as exc:
        print("launcher:", exc)
    proc.join(60)
"""

BASE_ENV = {"SGLANG_PLUGINS": "skipjoin", "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE"}


def run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600,
                          env=BASE_ENV | (env or {}))


def refusal(proc: subprocess.CompletedProcess) -> str:
    """The one line a refusing plugin leaves as the process's last word."""
    assert proc.returncode != 0, proc.stdout[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("skipjoin plugin not loaded")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def test_entry_point_hooks_every_target_of_the_pinned_release():
    proc = run(["-c", SCRIPT, SGLANG_VERSION])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["patched"] == sorted(t for t, _, _ in TARGETS) and len(TARGETS) == 8


def test_other_release_ends_the_process_naming_both_versions():
    line = refusal(run(["-c", SCRIPT, "0.5.24"]))
    assert "SGLangVersionError" in line and "written for sglang==0.5.23, found sglang==0.5.24" in line


def test_bad_policy_knobs_end_the_process():
    line = refusal(run(["-c", SCRIPT, SGLANG_VERSION], {"SKIPJOIN_ENGINE_POLICY_JSON": '{"levels": 0}'}))
    assert "levels must be in 1..32" in line


def test_a_missing_hook_target_ends_the_process():
    """A release that moved one function: SGLang's `apply_hooks` logs it and patches the rest."""
    target = "sglang.srt.managers.schedule_batch.ScheduleBatch._get_decode_retraction_order"
    line = refusal(run(["-c", SCRIPT, SGLANG_VERSION, target]))
    assert f"could not hook SGLang at {target}" in line


def test_scheduler_process_without_the_plugin_stops_the_launch():
    """The server never reports ready: SGLang's launcher sees its scheduler die at start-up."""
    proc = run(["-c", LAUNCH], {"SKIPJOIN_ENGINE_POLICY_JSON": "[1]"})
    assert "launcher: Rank 0 scheduler died during initialization (exit code: 1)" in proc.stdout, \
        proc.stdout + proc.stderr[-3000:]
    assert "ready" not in proc.stdout.split()
    assert "refusing to serve: ValueError: SKIPJOIN_ENGINE_POLICY_JSON must be a JSON object" in proc.stderr


def test_version_check():
    check_version(SGLANG_VERSION)
    with pytest.raises(SGLangVersionError, match="sglang==0.5.23, found sglang==0.4.0"):
        check_version("0.4.0")
