"""`deploy/gpu-smoke.sh`'s client and checks: drive one SGLang server into preemption, then say
whether the plugin did its work. Standard library only (it runs in the server's environment).

    python -m engine.sglang.smoke drive URL OUT.json [--long N] [--short N] ...
    python -m engine.sglang.smoke check --log ENGINE.log --stats STATS.json --run OUT.json
                                        [--schedulers 1] [--need-host]

`drive` sends long low-priority requests first, then short high-priority ones (greedy, fixed
lengths), then every request again alone, one at a time (nothing to preempt): the reference.
`check` prints one line per miss and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The plugin's line when a scheduler process plans its first pass (`Driver.bind`).
SCHEDULING = re.compile(r"skipjoin policy \S+ scheduling \(rank \d+ of \d+, pid \d+\)")
# SGLang's words when a plugin failed (it serves on without it) and when HiCache lost KV.
FAILURES = ("Failed to execute general plugin", "Failed to load plugin", "Failed to apply hooks to",
            "skipjoin plugin not loaded")
DROPPED = "dropped without backup"


def generate(url: str, rid: str, prompt: str, max_new: int, priority: int, timeout_s: float = 900) -> dict:
    body = {"rid": rid, "text": prompt, "priority": priority,
            "sampling_params": {"temperature": 0.0, "max_new_tokens": max_new, "ignore_eos": True}}
    req = urllib.request.Request(f"{url}/generate", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            out = json.loads(resp.read())
    except Exception as exc:  # noqa: BLE001 - a failed request is a result to count, not a crash
        return {"rid": rid, "error": f"{type(exc).__name__}: {exc}"}
    return {"rid": rid, "text": out.get("text"), "output_ids": out.get("output_ids"),
            "finish": (out.get("meta_info") or {}).get("finish_reason")}


def workload(n_long: int, n_short: int, long_tokens: int, short_tokens: int) -> list[dict]:
    """Long requests (priority = their length, as the gateway sends predictions) then short ones."""
    longs = [{"rid": f"long-{i}", "max_new": long_tokens, "priority": long_tokens,
              "prompt": f"Story {i}: tell a long tale about a lighthouse keeper number {i}."}
             for i in range(n_long)]
    shorts = [{"rid": f"short-{i}", "max_new": short_tokens, "priority": short_tokens,
               "prompt": f"Question {i}: name a colour and the number {i}."} for i in range(n_short)]
    return longs + shorts


def drive(url: str, out: Path, n_long: int, n_short: int, long_tokens: int, short_tokens: int,
          delay_s: float) -> None:
    reqs = workload(n_long, n_short, long_tokens, short_tokens)
    longs = [r for r in reqs if r["rid"].startswith("long")]
    def send(r: dict, suffix: str = "") -> dict:
        return generate(url, r["rid"] + suffix, r["prompt"], r["max_new"], r["priority"])

    with ThreadPoolExecutor(max_workers=len(reqs)) as pool:
        futures = [pool.submit(send, r) for r in longs]
        time.sleep(delay_s)  # the long ones are running: the short ones must preempt them
        futures += [pool.submit(send, r) for r in reqs if r not in longs]
        burst = [f.result() for f in futures]
    reference = [send(r, "-alone") for r in reqs]
    out.write_text(json.dumps({"burst": burst, "reference": reference}, indent=1))


def misses(log: str, stats: dict, run: dict, schedulers: int, need_host: bool) -> list[str]:
    """Every way this run falls short of proving the plugin works (empty: it does)."""
    out = []
    lines = SCHEDULING.findall(log)
    if len(lines) != schedulers:
        out.append(f"plugin: {len(lines)} scheduler processes ran skipjoin's policy, want {schedulers}")
    for word in FAILURES:
        if word in log:
            out.append(f"plugin: the engine log says {word!r}")
    if DROPPED in log:
        out.append("hicache: KV dropped without backup (host pool full)")
    for key, floor in (("preempted", 1), ("kept_kv_tokens", 1), ("readmitted", 1)):
        if int(stats.get(key, 0)) < floor:
            out.append(f"stats: {key} = {stats.get(key, 0)}, want >= {floor}")
    if int(stats.get("readmit_short", 0)):
        out.append(f"stats: {stats['readmit_short']} re-admitted requests found < kept - 1 of their KV")
    if need_host and int(stats.get("readmit_host_tokens", 0)) < 1:
        out.append("stats: no re-admitted KV came back from the host tier (readmit_host_tokens = 0)")
    burst, reference = run.get("burst", []), {r["rid"]: r for r in run.get("reference", [])}
    if not burst:
        out.append("requests: none were sent")
    failed = [r["rid"] for r in burst if r.get("error")]
    if failed:
        out.append(f"requests: {len(failed)} failed ({', '.join(failed[:5])})")
    differ = [r["rid"] for r in burst
              if not r.get("error") and _answer(r) != _answer(reference.get(f"{r['rid']}-alone", {}))]
    if differ:
        out.append(f"outputs: {len(differ)} differ from the same request run alone ({', '.join(differ[:5])})")
    return out


def _answer(result: dict):
    """Greedy output tokens (their text where the server does not return ids)."""
    return result.get("output_ids") or result.get("text")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.sglang.smoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("url")
    d.add_argument("out", type=Path)
    d.add_argument("--long", type=int, default=12)
    d.add_argument("--short", type=int, default=24)
    d.add_argument("--long-tokens", type=int, default=1500)
    d.add_argument("--short-tokens", type=int, default=32)
    d.add_argument("--delay-s", type=float, default=3.0)
    c = sub.add_parser("check")
    c.add_argument("--log", type=Path, required=True)
    c.add_argument("--stats", type=Path, required=True)
    c.add_argument("--run", type=Path, required=True)
    c.add_argument("--schedulers", type=int, default=1)
    c.add_argument("--need-host", action="store_true")
    args = parser.parse_args(argv)
    if args.cmd == "drive":
        drive(args.url, args.out, args.long, args.short, args.long_tokens, args.short_tokens, args.delay_s)
        return 0

    def read_json(path: Path) -> dict:
        try:
            return json.loads(path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return {}

    log = args.log.read_text(errors="replace") if args.log.exists() else ""
    found = misses(log, read_json(args.stats), read_json(args.run), args.schedulers, args.need_host)
    for line in found:
        print(f"MISS {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
