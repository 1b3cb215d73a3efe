#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on one machine, for trying and testing QueueWorker against a cluster without Docker:
# Debian's rabbitmq-server, three nodes on 127.0.0.1 with their own node names, ports, data and log directories,
# joined into one cluster. It never touches the shared node rabbit@localhost (port 5672) or its files.
#
#   start-cluster.sh start    start the nodes (those not running) and join them; idempotent
#   start-cluster.sh stop     stop the nodes (rabbitmqctl stop); their data stays for the next start
#   start-cluster.sh status   each node: running or not, and the cluster members it sees
#   start-cluster.sh uris     the comma-separated RabbitMq:Uri list of the nodes
#   start-cluster.sh clean    stop, then delete the data directory
#
# Environment:
#   QW_CLUSTER_PREFIX  node name prefix (qwc): nodes qwc1@localhost, qwc2@localhost, qwc3@localhost
#   QW_CLUSTER_PORT    AMQP port of node 1 (5701); node i listens on PORT+i-1, its Erlang distribution on that +20000
#   QW_CLUSTER_DIR     data, logs and config (/tmp/queueworker-cluster-<prefix>)
#   QW_CLUSTER_NODES   how many nodes (3)
#   QW_CLUSTER_START_TIMEOUT  seconds per node to start (180)
#   QW_CLUSTER_ERL_ARGS  extra Erlang VM flags (default: one scheduler, no busy waiting: the nodes share a small machine)
#
# All nodes share the rabbitmq user's Erlang cookie (Debian's scripts run the server and rabbitmqctl as that user),
# which is what lets them join.
# Management is not enabled (no HTTP ports); rabbitmqctl -n <node> works as for any node.
set -euo pipefail

PREFIX="${QW_CLUSTER_PREFIX:-qwc}"
BASE_PORT="${QW_CLUSTER_PORT:-5701}"
COUNT="${QW_CLUSTER_NODES:-3}"
DIR="${QW_CLUSTER_DIR:-/tmp/queueworker-cluster-$PREFIX}"
TIMEOUT="${QW_CLUSTER_START_TIMEOUT:-180}"
ERL_ARGS="${QW_CLUSTER_ERL_ARGS:-+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "start-cluster: $*"; }
die() { echo "start-cluster: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: Debian's rabbitmq-server starts as root and then runs as the rabbitmq user"
command -v rabbitmq-server >/dev/null 2>&1 || die "rabbitmq-server is not installed (ops/rabbitmq/start-local.sh installs it)"
[[ "$PREFIX" =~ ^[a-z][a-z0-9_-]*$ ]] || die "QW_CLUSTER_PREFIX '$PREFIX' must be lower-case letters, digits, '-' or '_'"
[ "$COUNT" -ge 1 ] || die "QW_CLUSTER_NODES must be at least 1"

node() { echo "${PREFIX}$1@localhost"; }
amqp_port() { echo $(( BASE_PORT + $1 - 1 )); }
dist_port() { echo $(( BASE_PORT + $1 - 1 + 20000 )); }
ctl() { local n="$1"; shift; rabbitmqctl -n "$(node "$n")" "$@"; }
running() { ctl "$1" -q status >/dev/null 2>&1; }
app_running() { ctl "$1" -q eval 'rabbit:is_running().' 2>/dev/null | grep -q true; }

# The members node $1 knows (disk nodes), one per line.
members() { ctl "$1" -q cluster_status --formatter json 2>/dev/null | jq -r '.disk_nodes[]?' | sort; }

port_free() { ! timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

start_node() {
  local i="$1" n log
  n="$(node "$i")"
  if running "$i"; then
    say "$n already running (AMQP 127.0.0.1:$(amqp_port "$i"))"
    return 0
  fi
  port_free "$(amqp_port "$i")" || die "127.0.0.1:$(amqp_port "$i") (AMQP of $n) is taken: set QW_CLUSTER_PORT"
  port_free "$(dist_port "$i")" || die "127.0.0.1:$(dist_port "$i") (distribution of $n) is taken: set QW_CLUSTER_PORT"
  mkdir -p "$DIR/mnesia" "$DIR/log"
  # The shared settings (consumer timeout, message size), plus this node's: no management listener.
  cp "$HERE/rabbitmq.conf" "$DIR/$PREFIX$i.conf"
  # The setting a 3-node cluster should run with: a node cut off from the majority pauses (closes its client
  # connections, so clients move to the majority) instead of going on alone and splitting the cluster's state.
  printf '\n## start-cluster.sh: a node in a minority pauses\ncluster_partition_handling = pause_minority\n' >> "$DIR/$PREFIX$i.conf"
  # A blank node 2..n joins node 1 while it boots (peer discovery from this list): no stop_app/reset/join round trips.
  # Node 1 starts the cluster: given the list it would first wait ~10 retries for peers that are not up yet.
  [ "$i" -eq 1 ] || {
    echo ""
    echo "## start-cluster.sh: the cluster's members"
    echo "cluster_formation.peer_discovery_backend = classic_config"
    for j in $(seq 1 "$COUNT"); do echo "cluster_formation.classic_config.nodes.$j = $(node "$j")"; done
  } >> "$DIR/$PREFIX$i.conf"
  echo "[]." > "$DIR/enabled_plugins"
  # Debian's rabbitmq-server drops root for the rabbitmq user: the node's directories must be that user's.
  if id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq:rabbitmq "$DIR"; fi
  log="$DIR/log/$PREFIX$i.stdout"
  say "starting $n on 127.0.0.1:$(amqp_port "$i") (distribution $(dist_port "$i"), data $DIR/mnesia, log $log)"
  env RABBITMQ_NODENAME="$n" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$(amqp_port "$i")" \
    RABBITMQ_DIST_PORT="$(dist_port "$i")" RABBITMQ_MNESIA_BASE="$DIR/mnesia" RABBITMQ_LOG_BASE="$DIR/log" \
    RABBITMQ_CONFIG_FILE="$DIR/$PREFIX$i.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
    RABBITMQ_PID_FILE="$DIR/$PREFIX$i.pid" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} $ERL_ARGS" \
    nohup rabbitmq-server > "$log" 2>&1 < /dev/null &
  echo $! > "$DIR/$PREFIX$i.launcher"
}

await_node() {
  local i="$1" n deadline pid
  n="$(node "$i")"
  deadline=$(( $(date +%s) + TIMEOUT ))
  until ctl "$i" -q await_startup -t 10 >/dev/null 2>&1; do
    pid="$(cat "$DIR/$PREFIX$i.launcher" 2>/dev/null || true)"
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && ! running "$i"; then
      tail -n 15 "$DIR/log/$PREFIX$i.stdout" >&2 || true
      die "$n exited while starting (log $DIR/log/)"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "$n did not start within ${TIMEOUT} s (QW_CLUSTER_START_TIMEOUT; log $DIR/log/)"
    sleep 1
  done
}

join_node() {
  local i="$1" n first
  n="$(node "$i")"
  first="$(node 1)"
  if members "$i" | grep -qx "$first"; then
    return 0
  fi
  say "joining $n to $first"
  {
    ctl "$i" -q stop_app
    ctl "$i" -q reset # join_cluster wants an empty node; a member of no cluster holds nothing of ours
    ctl "$i" -q join_cluster "$first"
    ctl "$i" -q start_app
    ctl "$i" -q await_startup -t "$TIMEOUT"
  } > "$DIR/log/join-$i.log" 2>&1 || { cat "$DIR/log/join-$i.log" >&2; die "$n could not join $first"; }
}

uris() {
  local i out=""
  for i in $(seq 1 "$COUNT"); do
    out="${out:+$out,}amqp://guest:guest@127.0.0.1:$(amqp_port "$i")/"
  done
  echo "$out"
}

status() {
  local i n
  for i in $(seq 1 "$COUNT"); do
    n="$(node "$i")"
    if running "$i"; then
      if app_running "$i"; then
        echo "$n: running, AMQP 127.0.0.1:$(amqp_port "$i"), cluster: $(members "$i" | paste -sd ' ' -)"
      else
        echo "$n: Erlang node up, RabbitMQ application stopped (rabbitmqctl -n $n start_app)"
      fi
    else
      echo "$n: not running"
    fi
  done
}

stop() {
  local i pids=()
  # In parallel: a node waits for its peers on the way down only briefly, and three sequential stops are slow.
  for i in $(seq 1 "$COUNT"); do
    if running "$i"; then
      say "stopping $(node "$i")"
      ctl "$i" -q stop >/dev/null 2>&1 &
      pids+=($!)
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
}

case "${1:-}" in
  start)
    # Running it again changes nothing: running nodes are left alone, members are not joined again.
    # Node 1 first, so the others find it when they boot and join it; a node that did not (it was started alone,
    # or its data predates the list) is joined by hand.
    start_node 1
    await_node 1
    for i in $(seq 2 "$COUNT"); do start_node "$i"; done
    for i in $(seq 2 "$COUNT"); do await_node "$i"; done
    for i in $(seq 2 "$COUNT"); do join_node "$i"; done
    for i in $(seq 1 "$COUNT"); do
      got="$(members "$i" | wc -l)"
      [ "$got" -eq "$COUNT" ] || die "$(node "$i") sees $got cluster members, not $COUNT: $(members "$i" | paste -sd ' ' -)"
    done
    say "cluster of $COUNT nodes is up; RabbitMq:Uri = $(uris)"
    ;;
  stop)
    stop
    say "stopped; data kept in $DIR (start again, or clean)"
    ;;
  clean)
    stop
    rm -rf "$DIR"
    say "stopped and removed $DIR"
    ;;
  status) status ;;
  uris) uris ;;
  *)
    echo "usage: $0 start|stop|status|uris|clean   (environment: QW_CLUSTER_PREFIX, QW_CLUSTER_PORT, QW_CLUSTER_DIR, QW_CLUSTER_NODES)" >&2
    exit 2
    ;;
esac
