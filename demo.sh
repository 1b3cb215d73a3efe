#!/usr/bin/env bash
# The main job in one command: a local RabbitMQ (installed when missing), the worker on the default
# model, a few sample jobs submitted at once (they share the engine's slots), and their completions
# with timing metrics. The worker is stopped (SIGTERM) at the end; the broker is left running.
set -euo pipefail
cd "$(dirname "$0")"

ops/rabbitmq/start-local.sh

echo "demo: building the worker and qw (Release)..."
dotnet build src/QueueWorker -c Release -v q -nologo > /dev/null
dotnet build src/QueueWorker.Cli -c Release -v q -nologo > /dev/null

# A free local port for /healthz, /readyz and /metrics.
port="${QW_DEMO_PORT:-8080}"
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done

log="$(mktemp -t queueworker-demo-XXXX.log)"
Http__BindAddress=127.0.0.1 Http__Port="$port" dotnet src/QueueWorker/bin/Release/net10.0/QueueWorker.dll > "$log" 2>&1 &
worker=$!
stop_worker() { kill -TERM "$worker" 2>/dev/null && wait "$worker" 2>/dev/null || true; }
trap stop_worker EXIT

echo "demo: worker starting (log: $log)"
for _ in $(seq 1 120); do
  if ! kill -0 "$worker" 2>/dev/null; then echo "demo: the worker exited:" >&2; tail -n 20 "$log" >&2; exit 1; fi
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz" 2>/dev/null || true)" = 200 ]; then break; fi
  sleep 0.5
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] || { echo "demo: the worker was not ready in 60 s" >&2; tail -n 20 "$log" >&2; exit 1; }

# What the engine runs with, and why (the worker logs every tuning decision).
grep -A1 -E 'LlamaEngine\[(1000|1001|1004)\]' "$log" | grep -v -E '^(--|info:)' | sed 's/^ */  worker: /'

qw() { dotnet src/QueueWorker.Cli/bin/Release/net10.0/qw.dll "$@"; }
prompts=("Once upon a time" "Tom had a red ball." "One day, Lily went to the park with her mom." "The little dog was sad because")
outputs=()
pids=()
for i in "${!prompts[@]}"; do
  outputs[$i]="$(mktemp)"
  qw submit "${prompts[$i]}" --max-tokens 64 --temperature 0 --timeout 120 > "${outputs[$i]}" 2>&1 &
  pids[$i]=$!
done
status=0
for i in "${!prompts[@]}"; do
  wait "${pids[$i]}" || status=1
  echo
  echo "── job $((i + 1)): \"${prompts[$i]}\""
  cat "${outputs[$i]}"
  rm -f "${outputs[$i]}"
done

echo
echo "── worker metrics (http://127.0.0.1:$port/metrics):"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^queueworker_(jobs_total|completion_tokens_total|prompt_tokens_total|slots_total)' | sed 's/^/  /'
exit $status
