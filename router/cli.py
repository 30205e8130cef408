"""`skipjoin` console script: each subcommand lives in its own package and takes argv."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "serve": ("router.serve", "Run the gateway (starts Redis and the embedded engine when unset)"),
    "engine": ("engine.launch", "Run vLLM with skipjoin's scheduler (or --backend sglang)"),
    "bench": ("bench.load", "Load-generate against any OpenAI-compatible URL"),
    "simulate": ("bench.simulate", "Trace-driven simulation of the scheduling policies"),
    "predictor-eval": ("predictor.evaluate", "Evaluate the length predictors"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: skipjoin {" + ",".join(COMMANDS) + "} [options]\n")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:<16}{help_}")
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
