"""`skipjoin engine --backend sglang`: SGLang's server with the plugin and the flags its hooks need.

    skipjoin engine --backend sglang --model PATH [--policy mlfq] [--policy-json JSON]
                    [--probe-layer K] [--host H] [--port P] [SGLang flags...]

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

from engine.policy import POLICY_NAMES
from engine.sglang.control import REDIS_ENV, REPLICA_ENV
from engine.sglang.plugin import POLICY_ENV, entry_point_problem, policy_config
from engine.sglang.version import SGLangVersionError, check_version, installed_version


def settings(model: str, probe_layer: int | None) -> dict[str, list[str]]:
    """SGLang flag → values: what the hooks rely on, and the probe layer."""
    flags: dict[str, list[str]] = {
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
        flags |= {"--enable-return-aux-hidden-states": [], "--speculative-algorithm": ["EAGLE3"],
                  "--return-aux-hidden-state-layer-ids": [str(probe_layer)]}
    return flags


def sglang_flags(model: str, probe_layer: int | None, extra: Sequence[str],
                 host: str = "127.0.0.1", port: int = 8100) -> list[str]:
    """SGLang's command line; flags in `extra` replace skipjoin's defaults of the same name."""
    defaults = settings(model, probe_layer) | {"--host": [host], "--port": [str(port)]}
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    flags = [part for name, value in defaults.items() if name not in given for part in (name, *value)]
    return flags + list(extra)


def embedded(model: str, probe_layer: int | None = None, policy: str = "{}", **overrides):
    """The same engine inside this Python process: `sglang.Engine` (no HTTP server). Its scheduler
    runs in a subprocess that inherits the environment: that is how the plugin gets its knobs."""
    import sglang

    check_version(installed_version())
    policy_config({POLICY_ENV: policy})
    problem = entry_point_problem(dict(os.environ))
    if problem:
        raise RuntimeError(f"SGLang would run without skipjoin's policy: {problem}")
    os.environ[POLICY_ENV] = policy
    kwargs: dict[str, object] = {
        name[2:].replace("-", "_"): (values[0] if values else True)
        for name, values in settings(model, probe_layer).items()
    }
    kwargs["priority_scheduling_preemption_threshold"] = 0
    if probe_layer is not None:
        kwargs["return_aux_hidden_state_layer_ids"] = [probe_layer]
    return sglang.Engine(**(kwargs | overrides))


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """skipjoin's options (named as for the vLLM backend); everything else goes to SGLang."""
    parser = argparse.ArgumentParser(prog="skipjoin engine --backend sglang", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder or Hugging Face id")
    parser.add_argument("--policy", choices=POLICY_NAMES, default="mlfq")
    parser.add_argument("--policy-json", default="{}", help="more policy knobs, as a JSON object")
    parser.add_argument("--probe-layer", type=int, default=None,
                        help="decoder layer (from 0) whose last-token hidden state probes return")
    parser.add_argument("--redis-url", default=os.environ.get(REDIS_ENV),
                        help="control plane: live knobs from the admin API, stats to the dashboards")
    parser.add_argument("--replica-id", default=None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    return parser.parse_known_args(list(argv))


def policy_json(args: argparse.Namespace) -> str:
    """The knobs for the scheduler process; a bad one raises ValueError here, before launch."""
    try:
        knobs = json.loads(args.policy_json or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"--policy-json: {exc}") from exc
    if not isinstance(knobs, dict):
        raise ValueError("--policy-json must be a JSON object")
    raw = json.dumps(knobs | {"name": args.policy})
    policy_config({POLICY_ENV: raw})
    return raw


def control_env(args: argparse.Namespace) -> dict[str, str]:
    env = {REDIS_ENV: args.redis_url} if args.redis_url else {}
    return env | ({REPLICA_ENV: args.replica_id} if args.replica_id else {})


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse(sys.argv[1:] if argv is None else argv)
    try:
        check_version(installed_version())
        raw = policy_json(args)
    except (ImportError, SGLangVersionError, ValueError) as exc:
        print(f"skipjoin engine: {exc}", file=sys.stderr)
        return 2
    problem = entry_point_problem(dict(os.environ))
    if problem:  # SGLang would serve stock scheduling: refuse before it starts
        print(f"skipjoin engine: SGLang would run without skipjoin's policy: {problem}", file=sys.stderr)
        return 2
    flags = sglang_flags(args.model, args.probe_layer, extra, args.host, args.port)
    cmd = [sys.executable, "-m", "sglang.launch_server", *flags]
    os.execvpe(cmd[0], cmd, os.environ | {POLICY_ENV: raw} | control_env(args))
    return 0  # not reached: the server replaces this process
