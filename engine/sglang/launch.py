"""`skipjoin engine --backend sglang`: SGLang's server with the plugin and the flags its hooks need.

    skipjoin engine --backend sglang --model PATH [--policy JSON] [--probe-layer K] [SGLang flags...]

Priority scheduling with low values first and threshold 0 (the level is `req.priority`), FCFS within
a level (priority works only with fcfs/lof), HiCache with write-back (a preempted request's
checkpointed KV goes to host memory when evicted, and is loaded back), and the probe's hidden state
from one middle layer. Any SGLang flag given after these overrides or extends them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from engine.sglang.plugin import POLICY_ENV, policy_config
from engine.sglang.version import SGLangVersionError, check_version, installed_version


def sglang_flags(model: str, probe_layer: int | None, extra: Sequence[str]) -> list[str]:
    """SGLang's command line; flags in `extra` replace skipjoin's defaults of the same name."""
    defaults: dict[str, list[str]] = {
        "--model-path": [model],
        "--schedule-policy": ["fcfs"],
        "--enable-priority-scheduling": [],
        "--schedule-low-priority-values-first": [],
        "--priority-scheduling-preemption-threshold": ["0"],
        "--retraction-policy": ["priority"],
        "--enable-hierarchical-cache": [],
        "--hicache-write-policy": ["write_back"],
        "--return-hidden-states-mode": ["last"],
    }
    if probe_layer is not None:
        # EAGLE3's convention names the layer whose *output* is captured; no draft model is loaded.
        defaults |= {"--enable-return-aux-hidden-states": [], "--speculative-algorithm": ["EAGLE3"],
                     "--return-aux-hidden-state-layer-ids": [str(probe_layer)]}
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    flags = [part for name, value in defaults.items() if name not in given for part in (name, *value)]
    return flags + list(extra)


def embedded(model: str, probe_layer: int | None = None, policy: str = "", **overrides):
    """The same engine in this process's Python: `sglang.Engine` (its scheduler is a subprocess
    that inherits the environment, which is how the plugin gets its knobs)."""
    import sglang

    check_version(installed_version())
    policy_config({POLICY_ENV: policy})
    os.environ[POLICY_ENV] = policy or json.dumps({})
    kwargs = {}
    flags = sglang_flags(model, probe_layer, [])
    for i, flag in enumerate(flags):
        if flag.startswith("--"):
            has_value = i + 1 < len(flags) and not flags[i + 1].startswith("--")
            kwargs[flag[2:].replace("-", "_")] = flags[i + 1] if has_value else True
    kwargs["priority_scheduling_preemption_threshold"] = 0
    if probe_layer is not None:
        kwargs["return_aux_hidden_state_layer_ids"] = [probe_layer]
    return sglang.Engine(**(kwargs | overrides))


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="skipjoin engine --backend sglang", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model path or Hugging Face id")
    parser.add_argument("--policy", default="", help="JSON of engine.policy.PolicyConfig knob changes")
    parser.add_argument("--probe-layer", type=int, default=None,
                        help="decoder layer (from 0) whose last-token hidden state probes return")
    return parser.parse_known_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse(sys.argv[1:] if argv is None else argv)
    try:
        check_version(installed_version())
    except (ImportError, SGLangVersionError) as exc:
        print(f"skipjoin: {exc}", file=sys.stderr)
        return 2
    try:
        policy_config({POLICY_ENV: args.policy})  # a bad knob fails here, not in the scheduler
    except ValueError as exc:
        print(f"skipjoin: {exc}", file=sys.stderr)
        return 2
    env = os.environ | {POLICY_ENV: args.policy or json.dumps({})}
    cmd = [sys.executable, "-m", "sglang.launch_server", *sglang_flags(args.model, args.probe_layer, extra)]
    os.execvpe(cmd[0], cmd, env)
    return 0  # not reached: the server replaces this process
