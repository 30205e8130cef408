"""What the probes add to time-to-first-token on a live engine (sequential, unloaded).

Each prompt runs under four conditions — no probe, prefill probe, question probe, both — each with
a fresh nonce in the system turn so no condition reuses another's prefix cache. The real request
is `max_tokens: 1`, so its latency is its time to first token; its `cached_tokens` shows the reuse.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from rich.table import Table

from predictor.base import PredictRequest
from predictor.config import PredictorConfig
from predictor.dataset import load_prompts, messages_of
from predictor.probes import ProbeClient

CONDITIONS = ("none", "prefill", "question", "both")
_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face. (session {})"


@dataclass(frozen=True)
class CostRow:
    condition: str
    probe_s: float
    ttft_s: float  # the real request's own time to first token
    prompt_tokens: int
    cached_tokens: int
    guess: float | None = None


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
    t1 = time.perf_counter()
    resp = await http.post(
        url + "/v1/chat/completions",
        json={"messages": messages, "max_tokens": 1, "temperature": 0.0},
        timeout=120,
    )
    resp.raise_for_status()
    ttft = time.perf_counter() - t1
    usage = resp.json().get("usage") or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return CostRow(condition, probe_s, ttft, usage.get("prompt_tokens", 0), cached, guess)


async def measure_cost(url: str, ids: list[str], config: PredictorConfig) -> list[CostRow]:
    url = url.rstrip("/")
    rows_by_id = {r["id"]: r for r in load_prompts()}
    cfg = PredictorConfig(engine_urls=(url,), feature=config.feature, probe_timeout_s=120.0)
    out: list[CostRow] = []
    async with httpx.AsyncClient() as http:
        probes = ProbeClient(http, cfg)
        await _one(http, probes, url, _with_nonce(messages_of(rows_by_id[ids[0]])), "both")  # warm-up
        for pid in ids:
            for condition in CONDITIONS:
                out.append(
                    await _one(http, probes, url, _with_nonce(messages_of(rows_by_id[pid])), condition)
                )
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
