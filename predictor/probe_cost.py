"""What the probes add to time-to-first-token on a live engine (sequential, unloaded).

Each prompt runs under five conditions — no probe, prefill probe, question probe, both, and inline
(no probe: the real request itself is flagged `skipjoin_predict` and the engine reads the feature
during its prefill) — each with a fresh nonce in the system turn so no condition reuses another's
prefix cache. The real request is `max_tokens: 1`, so its latency is its time to first token; its
`cached_tokens` shows the reuse.

    python -m predictor.probe_cost --engine-url http://127.0.0.1:8100 --prompts 20 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.dataset import load_prompts, messages_of
from predictor.probes import ProbeClient
from wire.xargs import PREDICT, PROBE_LAYER

CONDITIONS = ("none", "prefill", "question", "both", "inline")
_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face. (session {})"


@dataclass(frozen=True)
class CostRow:
    condition: str
    probe_s: float
    ttft_s: float  # the real request's own time to first token
    prompt_tokens: int
    cached_tokens: int
    guess: float | None = None
    prompt_id: str = ""


def _with_nonce(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rest = [m for m in messages if m["role"] != "system"]
    return [{"role": "system", "content": _SYSTEM.format(uuid.uuid4().hex[:12])}] + rest


async def _one(
    http: httpx.AsyncClient, probes: ProbeClient, url: str, messages: list[dict[str, Any]], condition: str
) -> CostRow:
    req = PredictRequest("\n".join(m["content"] for m in messages), messages, None, None, url)
    t0, guess = time.perf_counter(), None
    if condition in ("prefill", "both"):
        await probes.prefill(req)
    if condition in ("question", "both"):
        guess = (await probes.question(req)).guess
    probe_s = time.perf_counter() - t0
    body: dict[str, Any] = {"messages": messages, "max_tokens": 1, "temperature": 0.0}
    if condition == "inline":
        body["vllm_xargs"] = {PREDICT: uuid.uuid4().hex, PROBE_LAYER: probes.config.feature.layer}
    t1 = time.perf_counter()
    resp = await http.post(url + "/v1/chat/completions", json=body, timeout=120)
    resp.raise_for_status()
    ttft = time.perf_counter() - t1
    usage = resp.json().get("usage") or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return CostRow(condition, probe_s, ttft, usage.get("prompt_tokens", 0), cached, guess)


async def measure_cost(
    url: str, ids: list[str], config: PredictorConfig, repeats: int = 1,
    conditions: tuple[str, ...] = CONDITIONS,
) -> list[CostRow]:
    """Every prompt under each condition, `repeats` rounds (conditions interleaved per prompt)."""
    url = url.rstrip("/")
    rows_by_id = {r["id"]: r for r in load_prompts()}
    cfg = PredictorConfig(engine_urls=(url,), feature=config.feature, probe_timeout_s=120.0)
    out: list[CostRow] = []
    async with httpx.AsyncClient() as http:
        probes = ProbeClient(http, cfg)
        await _one(http, probes, url, _with_nonce(messages_of(rows_by_id[ids[0]])), "both")  # warm-up
        for pid in [p for _ in range(repeats) for p in ids]:
            for condition in conditions:
                row = await _one(http, probes, url, _with_nonce(messages_of(rows_by_id[pid])), condition)
                out.append(replace(row, prompt_id=pid))
    return out


def cost_table(rows: list[CostRow]) -> Table:
    table = Table(title="probe cost on the live engine (medians, sequential requests)")
    for col in (
        "condition",
        "probe s",
        "real TTFT s",
        "probe + TTFT s",
        "× no-probe TTFT",
        "cached/prompt tok",
        "guess parsed",
    ):
        table.add_column(col, justify="right")
    base = statistics.median(r.ttft_s for r in rows if r.condition == "none")
    for cond in CONDITIONS:
        rs = [r for r in rows if r.condition == cond]
        if not rs:
            continue
        total = statistics.median(r.probe_s + r.ttft_s for r in rs)
        parsed = sum(r.guess is not None for r in rs) / len(rs) if cond in ("question", "both") else None
        table.add_row(
            cond,
            f"{statistics.median(r.probe_s for r in rs):.3f}",
            f"{statistics.median(r.ttft_s for r in rs):.3f}",
            f"{total:.3f}",
            f"{total / base:.2f}",
            f"{statistics.median(r.cached_tokens for r in rs):.0f}/"
            f"{statistics.median(r.prompt_tokens for r in rs):.0f}",
            "" if parsed is None else f"{parsed:.0%}",
        )
    return table


def rows_json(rows: list[CostRow]) -> str:
    return json.dumps([r.__dict__ for r in rows])


def ratios(rows: list[CostRow]) -> dict[str, float]:
    """Median over prompts of (probe + TTFT) / the same prompt's no-probe TTFT, per condition
    (rounds of one prompt pooled by their medians first)."""
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        by.setdefault((r.prompt_id, r.condition), []).append(r.probe_s + r.ttft_s)
    prompts = sorted({p for p, _ in by})
    out = {}
    for cond in CONDITIONS:
        per = [statistics.median(by[p, cond]) / statistics.median(by[p, "none"])
               for p in prompts if (p, cond) in by and (p, "none") in by]
        if per:
            out[cond] = statistics.median(per)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m predictor.probe_cost", description=__doc__.split("\n")[0])
    ap.add_argument("--engine-url", required=True)
    ap.add_argument("--prompts", type=int, default=20, help="spread evenly over the repo's prompt set")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conditions", default="none,prefill,inline", help=f"comma list of {CONDITIONS}")
    ap.add_argument("--json", default=None, help="also write every row here")
    args = ap.parse_args(argv)
    ids = sorted(r["id"] for r in load_prompts())
    ids = ids[:: max(1, len(ids) // args.prompts)][: args.prompts]
    conditions = tuple(c for c in args.conditions.split(",") if c)
    if "none" not in conditions or not set(conditions) <= set(CONDITIONS):
        ap.error(f"--conditions must include none and name only {CONDITIONS}")
    rows = asyncio.run(measure_cost(args.engine_url, ids, PredictorConfig(), args.repeats, conditions))
    console = Console(width=130)
    console.print(cost_table(rows))
    console.print("median over prompts of (probe + TTFT) / no-probe TTFT: "
                  + ", ".join(f"{c} {v:.2f}x" for c, v in ratios(rows).items()))
    if args.json:
        with open(args.json, "w") as f:
            f.write(rows_json(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
