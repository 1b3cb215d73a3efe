#!/usr/bin/env bash
# Starts a local RabbitMQ for QueueWorker on 127.0.0.1, without Docker:
#   - installs Debian's rabbitmq-server with apt-get when it is missing;
#   - starts node rabbit@localhost on 127.0.0.1:5672 with ops/rabbitmq/rabbitmq.conf, unless it already runs;
#   - waits until the broker is up (await_startup) and exits non-zero with the log's tail when it cannot start.
# Idempotent: a running node is left alone (its settings are checked and reported).
#
# Environment: RABBITMQ_NODENAME (default rabbit@localhost), QW_RABBITMQ_PORT (5672),
#              QW_RABBITMQ_START_TIMEOUT seconds (120), QW_RABBITMQ_STATE directory (/tmp/queueworker-rabbitmq).
set -euo pipefail

NODE="${RABBITMQ_NODENAME:-rabbit@localhost}"
PORT="${QW_RABBITMQ_PORT:-5672}"
TIMEOUT="${QW_RABBITMQ_START_TIMEOUT:-120}"
STATE="${QW_RABBITMQ_STATE:-/tmp/queueworker-rabbitmq}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF_SOURCE="$HERE/rabbitmq.conf"
LOG="$STATE/${NODE%%@*}.log"
# Settings start-local checks on the running node: keep in step with rabbitmq.conf.
WANT_CONSUMER_TIMEOUT=3600000
WANT_MAX_MESSAGE_SIZE=16777216
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "start-local: $*"; }
die() { echo "start-local: ERROR: $*" >&2; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "run as root (or install sudo): installing and starting RabbitMQ needs root"
  SUDO=(sudo)
fi

ctl() { "${SUDO[@]}" rabbitmqctl -n "$NODE" "$@"; }

node_running() { ctl -q status >/dev/null 2>&1; }

# True when something on 127.0.0.1:$PORT answers the AMQP 0-9-1 header with a frame (a broker, whatever its node).
amqp_answers() {
  timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'AMQP\x00\x00\x09\x01' >&3 && head -c 1 <&3 | od -An -tx1 | grep -q 01" 2>/dev/null
}

port_open() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null; }

env_value() { # prints the node's setting or "default"
  local out
  out="$(ctl -q eval "case application:get_env(rabbit, $1) of {ok, V} -> V; undefined -> default end." 2>/dev/null || echo "unknown")"
  echo "$out" | tr -d '\r\n '
}

report_settings() {
  local timeout size
  timeout="$(env_value consumer_timeout)"
  size="$(env_value max_message_size)"
  if [ "$timeout" = "$WANT_CONSUMER_TIMEOUT" ] && [ "$size" = "$WANT_MAX_MESSAGE_SIZE" ]; then
    say "settings: consumer_timeout=${timeout} ms, max_message_size=${size} bytes (ops/rabbitmq/rabbitmq.conf)"
  else
    say "WARNING: node $NODE runs with consumer_timeout=${timeout}, max_message_size=${size}, not ops/rabbitmq/rabbitmq.conf" \
        "(${WANT_CONSUMER_TIMEOUT} ms, ${WANT_MAX_MESSAGE_SIZE} bytes). It was started without it; it works for tests," \
        "but a job longer than the broker's consumer timeout is redelivered. To apply: rabbitmqctl -n $NODE stop, then run this script again."
  fi
}

# 1. Install when missing.
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "rabbitmq-server is not installed and there is no apt-get: install RabbitMQ 3.10 or later yourself"
  say "rabbitmq-server is missing: installing Debian's package (apt-get update, then install)"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rabbitmq-server \
    || die "apt-get install rabbitmq-server failed"
fi

# 2. Already running? Leave it alone.
if node_running; then
  say "RabbitMQ node $NODE is already running on 127.0.0.1:$PORT: left as it is"
  report_settings
  exit 0
fi
if port_open; then
  if amqp_answers; then
    # E.g. the distribution's system service (node rabbit@<hostname>) started by the package on a machine with systemd.
    say "WARNING: an AMQP broker already listens on 127.0.0.1:$PORT but it is not node $NODE (probably the" \
        "rabbitmq-server system service): using it as it is. Its settings are not ops/rabbitmq/rabbitmq.conf:" \
        "copy that file to /etc/rabbitmq/rabbitmq.conf and restart the service to apply them."
    exit 0
  fi
  die "127.0.0.1:$PORT is taken by something that is not an AMQP broker: free the port or set QW_RABBITMQ_PORT"
fi

# 3. Start. The server runs as the rabbitmq user: give it a copy of the config it can read.
"${SUDO[@]}" mkdir -p "$STATE"
"${SUDO[@]}" chmod 755 "$STATE"
"${SUDO[@]}" cp "$CONF_SOURCE" "$STATE/rabbitmq.conf"
"${SUDO[@]}" chmod 644 "$STATE/rabbitmq.conf"
say "starting RabbitMQ node $NODE on 127.0.0.1:$PORT with $CONF_SOURCE (log: $LOG)"
# AMQP and the Erlang distribution port (rabbitmqctl's) both listen on the loopback only.
"${SUDO[@]}" env RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$PORT" \
  RABBITMQ_CONFIG_FILE="$STATE/rabbitmq.conf" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
  nohup rabbitmq-server > "$LOG" 2>&1 < /dev/null &
server_pid=$!

# The first errors name the cause (e.g. a bad setting); the last lines say how it ended.
show_log() {
  echo "----- first errors in $LOG -----" >&2
  grep -m 8 '\[error\]' "$LOG" >&2 || true
  echo "----- last lines of $LOG -----" >&2
  tail -n 12 "$LOG" >&2 || true
}

# 4. Wait for it: await_startup in short rounds, so a server that dies is noticed at once.
deadline=$(( $(date +%s) + TIMEOUT ))
until ctl -q await_startup -t 10 >/dev/null 2>&1; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    show_log
    die "RabbitMQ node $NODE exited while starting (log above; full log $LOG and /var/log/rabbitmq/$NODE.log)"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    show_log
    die "RabbitMQ node $NODE did not start within ${TIMEOUT} s (QW_RABBITMQ_START_TIMEOUT); it is left running (pid $server_pid) for inspection"
  fi
  sleep 1
done
amqp_answers || die "node $NODE started but 127.0.0.1:$PORT does not answer AMQP (log: $LOG)"
say "RabbitMQ node $NODE is up: amqp://guest:guest@127.0.0.1:$PORT/ (guest works from this machine only)"
report_settings
