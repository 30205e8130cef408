"""`skipjoin engine` on vLLM (the default backend, `engine/launch.py`): vLLM's OpenAI server with
skipjoin's scheduler inside. Also `python -m engine.vllm.launch`.

    skipjoin engine                                   # SmolLM2-135M on vLLM's CPU build, MLFQ
    skipjoin engine --model /models/llama --policy fcfs -- --tensor-parallel-size 2

Everything after `--` goes to vLLM unchanged. The scheduler's own settings travel as
`SKIPJOIN_ENGINE_*` environment variables (vLLM builds the scheduler in its engine process).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from engine.model_folder import SERVED_NAME, smollm2_folder
from engine.policy import POLICY_NAMES, PolicyConfig
from engine.vllm.probe import probe_engine_args, probe_engine_env
from engine.vllm.version import VLLMVersionError, check_version, installed_version

ALIASES = ["skipjoin-default", "smollm2"]  # also accepted as `model` for the embedded default


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def scheduler_cls(cpu: bool) -> str:
    return "engine.vllm.scheduler." + ("SkipJoinScheduler" if cpu else "SkipJoinAsyncScheduler")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(prog="skipjoin engine", description=__doc__.split("\n")[0],
                                 epilog="`skipjoin engine --backend sglang` runs SGLang (engine/launch.py)")
    ap.add_argument("--model", default="smollm2", help="'smollm2' (the bundled default) or an HF folder/id")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8100)
    ap.add_argument("--policy", choices=POLICY_NAMES, default="mlfq")
    ap.add_argument("--policy-json", default="{}", help="more policy knobs, as a JSON object")
    ap.add_argument("--stock", action="store_true",
                    help="plain vLLM (its own scheduler, priority order): the comparison arm")
    ap.add_argument("--redis-url", default=os.environ.get("SKIPJOIN_ENGINE_REDIS_URL"),
                    help="control plane: live knobs from the gateways' admin API, stats to their dashboards")
    ap.add_argument("--control-port", type=int, default=0, help="GET/PUT /policy, GET /stats on loopback")
    ap.add_argument("--replica-id", default=None)
    ap.add_argument("--probe-layers", default="9,14,19,29",
                    help="decoder layers a prefill probe may ask for (comma list; empty: no probe)")
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--block-size", type=int, default=None,
                    help="KV block tokens (CPU default 32: vLLM-CPU's own 128 leaves short prompts, "
                         "and so the probe's prefix, without a full block to reuse)")
    ap.add_argument("--kv-cache-gib", type=float, default=4.0, help="vLLM-CPU's KV space")
    ap.add_argument("--threads", default=None, help="CPU cores for vLLM's OpenMP, e.g. 0-1 (default: all)")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    return args, extra


def vllm_argv(args: argparse.Namespace, extra: list[str], cpu: bool) -> list[str]:
    model = str(smollm2_folder()) if args.model == "smollm2" else args.model
    names = [SERVED_NAME, *ALIASES] if args.model == "smollm2" else []
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model, "--host", args.host, "--port", str(args.port),
        "--max-model-len", str(args.max_model_len),
        "--scheduling-policy", "priority",  # accepts the gateway's `priority` field
        "--enable-prompt-tokens-details",  # cached_tokens in usage: the probe's prefix reuse shows
        "--uvicorn-log-level", args.log_level, "--disable-uvicorn-access-log",
    ]
    if names:
        argv += ["--served-model-name", *names]
    if cpu:
        argv += ["--dtype", "float32", "--block-size", str(args.block_size or 32)]
    elif args.block_size:
        argv += ["--block-size", str(args.block_size)]
    if not args.stock:
        argv += ["--scheduler-cls", scheduler_cls(cpu)]
        if probe_layers(args):
            argv += probe_engine_args(probe_layers(args), cpu)
    return argv + extra


def probe_layers(args: argparse.Namespace) -> list[int]:
    return [int(x) for x in args.probe_layers.split(",") if x.strip()]


def vllm_env(args: argparse.Namespace, cpu: bool) -> dict[str, str]:
    env = dict(os.environ)
    knobs = {"name": args.policy, **json.loads(args.policy_json)}
    PolicyConfig().updated(knobs)  # a bad knob fails here, not in vLLM's engine process
    env["SKIPJOIN_ENGINE_POLICY_JSON"] = json.dumps(knobs)
    env["SKIPJOIN_ENGINE_CONTROL_PORT"] = str(args.control_port)
    if args.redis_url:
        env["SKIPJOIN_ENGINE_REDIS_URL"] = args.redis_url
    env["SKIPJOIN_ENGINE_REPLICA_ID"] = args.replica_id or f"{args.host}:{args.port}"
    if cpu:
        cores = os.cpu_count() or 1
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", args.threads or f"0-{cores - 1}")  # "all" crashes
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{args.kv_cache_gib:g}")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not args.stock and probe_layers(args):
        env.update(probe_engine_env())
    # The engine imports this package by name in its own processes.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if not args.stock:  # plain vLLM (the comparison arm) runs no skipjoin code inside
            check_version(installed_version())
        cpu = on_cpu()
        env = vllm_env(args, cpu)
    except (ValueError, VLLMVersionError) as exc:
        print(f"skipjoin engine: {exc}", file=sys.stderr)
        return 2
    cmd = vllm_argv(args, extra, cpu)
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
