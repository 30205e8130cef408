"""`deploy/gpu-smoke.sh`'s checks (`engine.sglang.smoke`) on CPU: the plugin-loaded check reads
the log of a real scheduling pass, and misses on stock SGLang; every other check misses when its
part of the run falls short."""

import json
import subprocess
import sys
from pathlib import Path

from engine.sglang import smoke

# One scheduling pass over real SGLang objects, with SGLang's plugin loading and INFO logging as a
# server has them: the engine log a scheduler process leaves.
PASS = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
sys.path.insert(0, "tests/sglang_plugin")
from sglang.srt.plugins import load_plugins
load_plugins()
import sgl_objects as sgl
sgl.publish_args()
eng = sgl.Engine.build()
eng.schedule_policy().calc_priority([sgl.request("a", 8, priority=5)])
"""

GOOD_STATS = {"preempted": 3, "kept_kv_tokens": 900, "readmitted": 3, "readmit_short": 0,
              "readmit_host_tokens": 120}
GOOD_RUN = {"burst": [{"rid": "long-0", "output_ids": [5, 6]}, {"rid": "short-0", "text": "red"}],
            "reference": [{"rid": "long-0-alone", "output_ids": [5, 6]},
                          {"rid": "short-0-alone", "text": "red"}]}


def scheduler_logs() -> tuple[str, str]:
    """(with the plugin, stock SGLang): both processes at once."""
    env = {"PATH": "/usr/bin:/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    procs = [subprocess.Popen([sys.executable, "-c", PASS], env=env | {"SGLANG_PLUGINS": plugins},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for plugins in ("skipjoin", "none")]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    return logs[0], logs[1]


def test_plugin_loaded_check_passes_with_the_plugin_and_misses_on_stock_sglang():
    hooked, stock = scheduler_logs()
    assert smoke.misses(hooked, GOOD_STATS, GOOD_RUN, schedulers=1, need_host=True) == []
    missed = smoke.misses(stock, {}, GOOD_RUN, schedulers=1, need_host=True)
    assert missed[0] == "plugin: 0 scheduler processes ran skipjoin's policy, want 1"
    assert "stats: preempted = 0, want >= 1" in missed and len(missed) == 5


def test_each_shortfall_is_a_miss():
    log = "skipjoin policy mlfq scheduling (rank 0 of 1, pid 7)\n"
    assert smoke.misses(log, GOOD_STATS, GOOD_RUN, 1, True) == []
    bad_log = log + "Failed to execute general plugin: other\nwrite_back: KV subtree dropped without backup\n"
    assert len(smoke.misses(bad_log, GOOD_STATS, GOOD_RUN, 1, True)) == 2
    assert smoke.misses(log * 2, GOOD_STATS, GOOD_RUN, 1, True) == [
        "plugin: 2 scheduler processes ran skipjoin's policy, want 1"]
    short = GOOD_STATS | {"readmit_short": 1, "readmit_host_tokens": 0}
    assert len(smoke.misses(log, short, GOOD_RUN, 1, True)) == 2
    assert len(smoke.misses(log, short | {"readmit_short": 0}, GOOD_RUN, 1, False)) == 0
    failed = {"burst": [{"rid": "long-0", "error": "HTTPError: 500"}, {"rid": "short-0", "text": "blue"}],
              "reference": GOOD_RUN["reference"]}
    assert smoke.misses(log, GOOD_STATS, failed, 1, True) == [
        "requests: 1 failed (long-0)", "outputs: 1 differ from the same request run alone (short-0)"]


def test_check_command_exits_non_zero_with_one_line_per_miss(tmp_path: Path, capsys):
    (tmp_path / "engine.log").write_text("skipjoin policy mlfq scheduling (rank 0 of 1, pid 7)\n")
    (tmp_path / "stats.json").write_text(json.dumps(GOOD_STATS))
    (tmp_path / "run.json").write_text(json.dumps(GOOD_RUN))
    args = ["check", "--log", str(tmp_path / "engine.log"), "--stats", str(tmp_path / "stats.json"),
            "--run", str(tmp_path / "run.json"), "--need-host"]
    assert smoke.main(args) == 0 and capsys.readouterr().out == ""
    (tmp_path / "stats.json").write_text("{}")  # a server that never published: stock, or dead
    assert smoke.main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out and all(line.startswith("MISS ") for line in out) and len(out) == 4
