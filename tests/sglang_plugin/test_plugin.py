"""The entry point as SGLang's own `load_plugins()` finds and runs it, in fresh processes (hooks
cannot be un-applied): the version guard refuses any release but the pinned one, patching nothing."""

import json
import subprocess
import sys

import pytest

from engine.sglang.version import SGLANG_VERSION, SGLangVersionError, check_version

# Pretends the installed SGLang is `argv[1]`, runs every installed general plugin, reports.
SCRIPT = """
import json, logging, sys
import sglang.version
sglang.version.__version__ = sys.argv[1]
from sglang.srt.plugins import load_plugins
from sglang.srt.plugins.hook_registry import HookRegistry
logging.basicConfig(level=logging.ERROR)
load_plugins()
print(json.dumps({"patched": sorted(HookRegistry._patched), "hooks": len(HookRegistry._hooks)}))
"""


def run_plugins(version: str) -> tuple[dict, str]:
    env = {"SGLANG_PLUGINS": "skipjoin", "PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, version], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_entry_point_hooks_the_pinned_release():
    report, _ = run_plugins(SGLANG_VERSION)
    assert "sglang.srt.managers.schedule_batch.release_req" in report["patched"]
    assert "sglang.srt.managers.scheduler.Scheduler.process_batch_result" in report["patched"]
    assert len(report["patched"]) == 7


def test_other_release_is_refused_naming_both_versions():
    report, log = run_plugins("0.5.24")
    assert report["patched"] == [] and report["hooks"] == 0
    assert "written for sglang==0.5.23, found sglang==0.5.24" in log


def test_version_check():
    check_version(SGLANG_VERSION)
    with pytest.raises(SGLangVersionError, match="sglang==0.5.23, found sglang==0.4.0"):
        check_version("0.4.0")
