#!/usr/bin/env bash
# GPU smoke test of the SGLang backend: the same heavy-tailed burst through the gateway, once to
# SGLang patched with skipjoin (MLFQ levels as priorities, preemption on KV shortage, KV kept in
# the radix tree + HiCache host tier) and once to stock SGLang (priority off, plugin not loaded).
# Prints skipjoin/stock mean and p99 latency ratios and skipjoin's preemption/host-tier counters.
#
#   deploy/gpu-smoke.sh [MODEL]        # on a machine with an NVIDIA GPU and sglang==0.5.23
#
# Needs: `pip install -e ".[sglang]"` (or deploy/Dockerfile.gpu). Knobs (env): N requests (300),
# RATE req/s (25: a burst well past capacity for a small model), MAX_OUTPUT (2048),
# MEM (SGLang --mem-fraction-static, 0.5: a tight KV pool so that preemption happens), OUT dir.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-${SKIPJOIN_GPU_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}}
N=${N:-300} RATE=${RATE:-25} MAX_OUTPUT=${MAX_OUTPUT:-2048} MEM=${MEM:-0.5}
OUT=${OUT:-results/gpu-smoke} ENGINE_PORT=${ENGINE_PORT:-8100} GW_PORT=${GW_PORT:-8000}
PY=${PYTHON:-python}
mkdir -p "$OUT"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
"$PY" -c "from engine.sglang.version import check_version, installed_version as v; check_version(v())"

# One Redis for the gateway and the engine's control plane (stats come back through it).
"$PY" -c "
import time; from router.redis_server import RedisServer
s = RedisServer().start(); print(s.url, flush=True); time.sleep(10**9)" > "$OUT/redis.url" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$OUT/redis.url" ] && break; sleep 0.1; done
REDIS=$(head -1 "$OUT/redis.url")

wait_http() {  # URL, seconds
  for _ in $(seq "$2"); do curl -sf "$1" >/dev/null && return 0; sleep 1; done
  echo "not up: $1" >&2; return 1
}

run_arm() {  # ARM: skipjoin | stock
  local arm=$1 engine_pid gw_pid
  if [ "$arm" = skipjoin ]; then
    "$PY" -m router.cli engine --backend sglang --model "$MODEL" --port "$ENGINE_PORT" \
      --redis-url "$REDIS" --replica-id smoke-sglang --mem-fraction-static "$MEM" --enable-metrics \
      > "$OUT/engine-$arm.log" 2>&1 &
  else  # stock: the plugin is installed, so keep SGLang from loading it
    SGLANG_PLUGINS=none "$PY" -m sglang.launch_server --model-path "$MODEL" --port "$ENGINE_PORT" \
      --mem-fraction-static "$MEM" --enable-metrics > "$OUT/engine-$arm.log" 2>&1 &
  fi
  engine_pid=$!; PIDS+=("$engine_pid")
  wait_http "http://127.0.0.1:$ENGINE_PORT/v1/models" 900
  # Stock SGLang without priority scheduling would refuse a `priority`: the gateway leaves it out.
  SKIPJOIN_ENGINES="http://127.0.0.1:$ENGINE_PORT" SKIPJOIN_REDIS_URL="$REDIS" SKIPJOIN_PORT="$GW_PORT" \
    SKIPJOIN_ENGINE_PRIORITY=$([ "$arm" = skipjoin ] && echo true || echo false) \
    "$PY" -m router.cli serve > "$OUT/gateway-$arm.log" 2>&1 &
  gw_pid=$!; PIDS+=("$gw_pid")
  wait_http "http://127.0.0.1:$GW_PORT/v1/models" 120
  "$PY" -m router.cli bench --url "http://127.0.0.1:$GW_PORT" --model "$MODEL" --workload sharegpt-heavy \
    -n "$N" --rate "$RATE" --max-output "$MAX_OUTPUT" --seed 1 --out "$OUT/bench-$arm.json"
  curl -sf "http://127.0.0.1:$ENGINE_PORT/metrics" > "$OUT/metrics-$arm.txt" || true
  [ "$arm" = skipjoin ] && "$PY" -c "
import redis, sys; from wire import control
sys.stdout.write((redis.Redis.from_url('$REDIS').get(control.engine_stats('smoke-sglang')) or b'{}').decode())
" > "$OUT/skipjoin-stats.json"
  kill "$gw_pid" "$engine_pid"; wait "$gw_pid" "$engine_pid" 2>/dev/null || true
  sleep 5  # the GPU memory of the engine's subprocesses
}

run_arm stock
run_arm skipjoin

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
row = {arm: json.loads((out / f"bench-{arm}.json").read_text())["runs"][0] for arm in ("stock", "skipjoin")}
for key in ("mean", "p99", "short_mean", "long_mean", "throughput_rps"):
    s, k = row["stock"][key], row["skipjoin"][key]
    print(f"{key:>15}: stock {s:9.3f}  skipjoin {k:9.3f}  ratio {k / s:6.3f}")
print("failed:", {arm: r["failed"] for arm, r in row.items()})
stats = json.loads((out / "skipjoin-stats.json").read_text() or "{}")
print("skipjoin counters:", {k: stats.get(k) for k in
      ("passes", "preempted", "kept_kv_tokens", "retracted", "preemptions", "promotions", "kv_evictions")})
for line in (out / "metrics-skipjoin.txt").read_text().splitlines():
    if not line.startswith("#") and any(w in line for w in ("hicache", "host", "retract", "preempt", "cache_hit")):
        print("sglang metric:", line)
EOF
