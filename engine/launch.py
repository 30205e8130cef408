"""`skipjoin engine`: an OpenAI server with skipjoin's scheduler inside, on vLLM (the default) or SGLang.

    skipjoin engine [--model M --policy P ...] [-- vLLM flags]      # engine/vllm/launch.py
    skipjoin engine --backend sglang --model PATH [SGLang flags...]  # engine/sglang/launch.py

This file only picks the backend; each launcher owns its own flags (`--help` after the backend).
"""

from __future__ import annotations

import sys

BACKENDS = ("vllm", "sglang")


def split_backend(argv: list[str]) -> tuple[str, list[str]]:
    """The backend `--backend X` (or `--backend=X`) names before any `--`, and the argv left for its
    launcher. SGLang's launcher takes every flag as its own, so a `--` is dropped for it."""
    end = argv.index("--") if "--" in argv else len(argv)
    backend, rest = "vllm", list(argv)
    for i, arg in enumerate(argv[:end]):
        if arg == "--backend":
            if i + 1 >= end:
                raise ValueError("--backend needs a value: " + " or ".join(BACKENDS))
            backend, rest = argv[i + 1], argv[:i] + argv[i + 2:]
            break
        if arg.startswith("--backend="):
            backend, rest = arg.split("=", 1)[1], argv[:i] + argv[i + 1:]
            break
    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: choose " + " or ".join(BACKENDS))
    if backend == "sglang" and "--" in rest:
        rest.remove("--")
    return backend, rest


def main(argv: list[str] | None = None) -> int:
    try:
        backend, rest = split_backend(list(sys.argv[1:] if argv is None else argv))
    except ValueError as exc:
        print(f"skipjoin engine: {exc}", file=sys.stderr)
        return 2
    if backend == "sglang":  # imported on demand: each backend's launcher needs only its own engine
        from engine.sglang.launch import main as launch
    else:
        from engine.vllm.launch import main as launch
    return int(launch(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
