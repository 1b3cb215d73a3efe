#!/usr/bin/env bash
# Runs the worker the way the container image runs it, on a machine without a Docker engine:
#   - `dotnet publish` with the Dockerfile's flags (framework-dependent, this machine's architecture);
#   - the published files and the model owned by root and read-only for the worker, like /app and /models;
#   - a non-root numeric user (setpriv), an empty environment plus configuration by environment
#     variables only (Model__Path, RabbitMq__Uri, Http__Port, ...), HOME not writable;
#   - then: /healthz answers, the Dockerfile's own HEALTHCHECK command passes, /readyz turns 200 (model
#     loaded, broker connected, consumer running), /metrics has the queueworker_* series, and SIGTERM
#     ends the process with exit code 0 within RabbitMq:ShutdownGraceSeconds.
#
# Usage: ops/smoke-publish.sh [--publish-dir DIR] [--no-broker] [--keep]
#   --publish-dir DIR  use an existing publish output instead of publishing
#   --no-broker        stop after /healthz and the health check (no /readyz, which needs a broker)
#   --keep             keep the work directory (logs, publish output) for inspection
# Environment:
#   QW_SMOKE_UID [10001]          user and group id to run as (must not be 0)
#   QW_SMOKE_MODEL [../shared/models/stories260K.gguf]
#   QW_SMOKE_RABBITMQ_URI [amqp://guest:guest@localhost:5672/]
#   QW_SMOKE_TIMEOUT [90]         seconds to wait for /healthz and for /readyz
#   RABBITMQ_NODENAME [rabbit@localhost]  node whose smoke queues are deleted afterwards (when rabbitmqctl exists)
# The worker uses queues named qw-smoke-<random>.* so it never takes anyone else's jobs; they are
# deleted at the end. Exit code 0 when every check passed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
publish_dir=""
use_broker=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --publish-dir) publish_dir=$(cd "$2" && pwd); shift 2 ;;
    --no-broker) use_broker=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "smoke-publish.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

uid=${QW_SMOKE_UID:-10001}
model=${QW_SMOKE_MODEL:-$repo/../shared/models/stories260K.gguf}
broker_uri=${QW_SMOKE_RABBITMQ_URI:-amqp://guest:guest@localhost:5672/}
timeout=${QW_SMOKE_TIMEOUT:-90}
node=${RABBITMQ_NODENAME:-rabbit@localhost}

fail() { echo "smoke-publish.sh: FAIL: $*" >&2; exit 1; }
step() { echo "smoke-publish.sh: $*"; }

[ "$uid" != 0 ] || fail "QW_SMOKE_UID must not be 0: the point is to run as a non-root user"
[ -f "$model" ] || fail "model '$model' not found (set QW_SMOKE_MODEL)"
command -v dotnet >/dev/null || fail "dotnet not on PATH"
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed to drop to uid $uid"
  run_as=(setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all)
else
  step "not root: running as the current user $(id -u) instead of $uid"
  uid=$(id -u)
  run_as=()
fi
as_user() { "${run_as[@]}" "$@"; }

work=$(mktemp -d /tmp/qw-smoke.XXXXXX)
chmod 755 "$work"
worker_pid=""
id=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
jobs_queue="qw-smoke-$id.jobs"
results_queue="qw-smoke-$id.results"

cleanup() {
  local status=$?
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -KILL "$worker_pid" 2>/dev/null || true
  fi
  if [ "$use_broker" = 1 ] && command -v rabbitmqctl >/dev/null; then
    for q in "$jobs_queue" "$jobs_queue.dlq" "$results_queue"; do
      rabbitmqctl -n "$node" -q delete_queue "$q" >/dev/null 2>&1 || true
    done
  fi
  if [ "$status" != 0 ] && [ -f "$work/worker.log" ]; then
    echo "---- last lines of the worker's log ($work/worker.log) ----" >&2
    tail -n 40 "$work/worker.log" >&2 || true
  fi
  if [ "$keep" = 1 ] || [ "$status" != 0 ]; then
    echo "smoke-publish.sh: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# 1. Publish exactly as the Dockerfile does.
if [ -z "$publish_dir" ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) fail "unsupported machine architecture $(uname -m)" ;;
  esac
  step "publishing src/QueueWorker (-a $arch, framework-dependent) to $work/app"
  dotnet publish "$repo/src/QueueWorker/QueueWorker.csproj" -c Release -a "$arch" --self-contained false \
    -p:UseAppHost=false -o "$work/app" > "$work/publish.log" 2>&1 \
    || { tail -n 30 "$work/publish.log" >&2; fail "dotnet publish failed (log: $work/publish.log)"; }
else
  step "using the publish output in $publish_dir"
  cp -a "$publish_dir" "$work/app"
fi
[ -f "$work/app/QueueWorker.dll" ] || fail "no QueueWorker.dll in the publish output"
[ -f "$work/app/appsettings.json" ] || fail "no appsettings.json in the publish output (the worker's defaults)"
find "$work/app/runtimes" -name 'libllama.so' 2>/dev/null | grep -q . \
  || fail "the publish output has no runtimes/*/native/**/libllama.so (LLamaSharp.Backend.Cpu native libraries)"

# 2. Lay out /app and /models: root-owned, read-only for the worker. HOME is not writable either
#    (Kubernetes: readOnlyRootFilesystem); only TMPDIR is, like the image's /tmp emptyDir.
mkdir -p "$work/models" "$work/tmp"
cp "$model" "$work/models/model.gguf"
chown -R 0:0 "$work/app" "$work/models" 2>/dev/null || true
chmod -R a+rX,go-w "$work/app" "$work/models"
chmod a-w "$work/models/model.gguf"
chown "$uid:$uid" "$work/tmp" 2>/dev/null || true
chmod 700 "$work/tmp"
as_user test -r "$work/models/model.gguf" || fail "uid $uid cannot read the model copy"
as_user dotnet --list-runtimes > "$work/runtimes.txt" 2>&1 \
  || fail "uid $uid cannot run dotnet ($(command -v dotnet)): is the .NET install readable by others?"
grep -q '^Microsoft.AspNetCore.App 10\.' "$work/runtimes.txt" || fail "no ASP.NET Core 10 runtime for uid $uid"

# 3. A free local port (the image uses 8080; here something else may already listen there).
port=""
for _ in $(seq 1 50); do
  candidate=$(( 20000 + RANDOM % 20000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[ -n "$port" ] || fail "no free local port found"

http_status() { # path -> prints the HTTP status code, or nothing when nobody answers
  ( exec 3<>"/dev/tcp/127.0.0.1/$port" \
    && printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&3 \
    && head -n 1 <&3 | awk '{print $2}' ) 2>/dev/null || true
}
http_body() {
  ( exec 3<>"/dev/tcp/127.0.0.1/$port" \
    && printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&3 \
    && sed '1,/^\r\{0,1\}$/d' <&3 ) 2>/dev/null || true
}

# 4. Start it as the image does: WORKDIR /app, ENTRYPOINT dotnet QueueWorker.dll, configuration by
#    environment only. setpriv and env exec in place, so $! is the worker's own pid.
step "starting the worker as uid $uid on 127.0.0.1:$port (queues $jobs_queue, $results_queue)"
cd "$work/app"
"${run_as[@]}" env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME="$work/app" TMPDIR="$work/tmp" \
  DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 ASPNETCORE_HTTP_PORTS= \
  ${DOTNET_ROOT:+DOTNET_ROOT="$DOTNET_ROOT"} \
  Model__Path="$work/models/model.gguf" \
  RabbitMq__Uri="$broker_uri" \
  RabbitMq__JobsQueue="$jobs_queue" \
  RabbitMq__ResultsQueue="$results_queue" \
  Http__Port="$port" \
  Http__BindAddress=127.0.0.1 \
  dotnet QueueWorker.dll > "$work/worker.log" 2>&1 &
worker_pid=$!
cd "$repo"

alive() { kill -0 "$worker_pid" 2>/dev/null; }
wait_for() { # path expected-status what
  local deadline=$(( SECONDS + timeout )) status=""
  while [ $SECONDS -lt $deadline ]; do
    if ! alive; then
      local code=0
      wait "$worker_pid" || code=$?
      worker_pid=""
      fail "the worker exited (code $code) before $3"
    fi
    status=$(http_status "$1")
    [ "$status" = "$2" ] && return 0
    sleep 1
  done
  fail "$3: GET $1 still answers '${status:-nothing}' after ${timeout}s"
}

wait_for /healthz 200 "/healthz answered 200"
step "ok: /healthz 200"

actual_uid=$(awk '/^Uid:/ {print $2}' "/proc/$worker_pid/status")
[ "$actual_uid" = "$uid" ] || fail "the worker runs as uid $actual_uid, not $uid"
step "ok: the worker runs as uid $actual_uid"

# 5. The Dockerfile's HEALTHCHECK command itself, as the worker's user, with the same Http__Port.
hc=$(sed -n 's/^ *CMD \["bash", "-c", "\(.*\)"\]$/\1/p' "$repo/Dockerfile" | sed 's/\\\\/\\/g')
[ -n "$hc" ] || fail "no HEALTHCHECK CMD [\"bash\", \"-c\", ...] found in the Dockerfile"
env -i PATH=/usr/bin:/bin Http__Port="$port" "${run_as[@]}" timeout 5 bash -c "$hc" \
  || fail "the Dockerfile's HEALTHCHECK command failed against the running worker"
step "ok: the Dockerfile's HEALTHCHECK command passes"

if [ "$use_broker" = 1 ]; then
  wait_for /readyz 200 "/readyz answered 200 (model loaded, broker connected, consumer running)"
  step "ok: /readyz 200"
  metrics=$(http_body /metrics)
  for series in 'queueworker_model_loaded 1' 'queueworker_broker_connected 1' 'queueworker_consumer_running 1' 'queueworker_slots_total'; do
    grep -q "^$series" <<< "$metrics" || fail "/metrics lacks '$series'"
  done
  step "ok: /metrics has the queueworker_* series"
fi

# 6. SIGTERM: stop taking jobs, finish or requeue, exit 0 within the shutdown grace (+ margin).
grace=$(sed -n 's/.*"ShutdownGraceSeconds": *\([0-9]*\).*/\1/p' "$work/app/appsettings.json")
grace=${grace:-30}
kill -TERM "$worker_pid"
deadline=$(( SECONDS + grace + 15 ))
while alive && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
alive && fail "the worker still runs $(( grace + 15 ))s after SIGTERM (RabbitMq:ShutdownGraceSeconds=$grace)"
code=0; wait "$worker_pid" || code=$?
worker_pid=""
[ "$code" = 0 ] || fail "the worker exited with code $code after SIGTERM, not 0"
step "ok: SIGTERM -> exit 0"

# 7. The worker wrote nothing outside TMPDIR (the image's root filesystem may be read-only).
written=$(find "$work/app" "$work/models" -newer "$work/runtimes.txt" -print | head -n 5)
[ -z "$written" ] || fail "the worker wrote into its read-only places: $written"

echo "smoke-publish.sh: PASS"
