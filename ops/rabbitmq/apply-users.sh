#!/usr/bin/env bash
# Applies QueueWorker's least-privilege users to a running RabbitMQ node with rabbitmqctl: the same
# users and permission regexes as definitions.json (which a containerised broker loads at boot).
# Idempotent: re-running resets passwords, tags and permissions to what this script says.
#
#   queueworker-worker    configure its four queues (it declares them at startup) and the control exchange
#                         with its own control queue (cancels), write to the
#                         default exchange (results, reply_to, parked and re-published jobs), read the
#                         jobs queue and the dead-letter queue (it answers dead letters) only
#   queueworker-producer  configure/read server-named reply queues (amq.gen-*), write to the default
#                         exchange (jobs) and the control exchange (qw cancel), read the results queue
#   queueworker-keda      management tag, no AMQP rights: reads queue lengths over the HTTP API
#
# Environment (defaults in brackets):
#   RABBITMQ_NODENAME [rabbit@localhost]   node to talk to
#   QW_VHOST [/]                           virtual host; created when missing
#   QW_JOBS_QUEUE [llm.jobs]  QW_RESULTS_QUEUE [llm.results]  QW_DEAD_LETTER_QUEUE [<jobs>.dlq]
#                                          must equal the worker's RabbitMq:* settings
#   QW_CONTROL_EXCHANGE [llm.control]     RabbitMq:ControlExchange: the worker declares it and binds its own
#                                          <exchange>.worker-<hex> queue; the producer publishes cancels to it
#   QW_USER_PREFIX [queueworker]           users are <prefix>-worker, <prefix>-producer, <prefix>-keda
#   QW_WORKER_PASSWORD, QW_PRODUCER_PASSWORD, QW_KEDA_PASSWORD
#                                          default to the EXAMPLE passwords of definitions.json
#                                          (ChangeMe...): replace them on any broker but a throwaway one.
# Passwords never reach a command line: they are hashed here (hash-password.sh) and the users and
# permissions imported in one `rabbitmqctl import_definitions` (which creates or updates them).
set -euo pipefail

node=${RABBITMQ_NODENAME:-rabbit@localhost}
vhost=${QW_VHOST:-/}
jobs=${QW_JOBS_QUEUE:-llm.jobs}
results=${QW_RESULTS_QUEUE:-llm.results}
dlq=${QW_DEAD_LETTER_QUEUE:-$jobs.dlq}
parked=$jobs.parked
control=${QW_CONTROL_EXCHANGE:-llm.control}
prefix=${QW_USER_PREFIX:-queueworker}

example_passwords=0
worker_password=${QW_WORKER_PASSWORD:-}
producer_password=${QW_PRODUCER_PASSWORD:-}
keda_password=${QW_KEDA_PASSWORD:-}
[ -n "$worker_password" ] || { worker_password=ChangeMeWorker1; example_passwords=1; }
[ -n "$producer_password" ] || { producer_password=ChangeMeProducer1; example_passwords=1; }
[ -n "$keda_password" ] || { keda_password=ChangeMeKeda1; example_passwords=1; }

ctl() { rabbitmqctl -n "$node" -s "$@"; }

# A queue name as a literal inside a permission regex (names may hold '.', '-', '+', ...).
re_escape() { printf '%s' "$1" | sed -e 's/[][\.|$(){}?+*^\\]/\\&/g'; }
# A string as a JSON string literal.
json() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }
password_hash() { printf '%s' "$1" | "$(dirname "$0")/hash-password.sh"; }

if ! ctl await_startup --timeout 20 >/dev/null 2>&1; then
  echo "apply-users.sh: RabbitMQ node $node is not running (see ops/rabbitmq/start-local.sh)" >&2
  exit 1
fi

j=$(re_escape "$jobs"); r=$(re_escape "$results"); d=$(re_escape "$dlq"); p=$(re_escape "$parked"); c=$(re_escape "$control")
user() { # name password tags-json
  printf '{"name":%s,"password_hash":"%s","hashing_algorithm":"rabbit_password_hashing_sha256","tags":%s,"limits":{}}' \
    "$(json "$1")" "$(password_hash "$2")" "$3"
}
permission() { # user configure write read
  printf '{"user":%s,"vhost":%s,"configure":%s,"write":%s,"read":%s}' \
    "$(json "$1")" "$(json "$vhost")" "$(json "$2")" "$(json "$3")" "$(json "$4")"
}

worker_user=$(user "$prefix-worker" "$worker_password" '[]')
producer_user=$(user "$prefix-producer" "$producer_password" '[]')
keda_user=$(user "$prefix-keda" "$keda_password" '["management"]')
worker_permission=$(permission "$prefix-worker" "^($j|$d|$p|$r|$c|$c\\.worker-[0-9a-f]+)\$" "^(amq\\.default|$c\\.worker-[0-9a-f]+)\$" "^($j|$d|$c|$c\\.worker-[0-9a-f]+)\$")
producer_permission=$(permission "$prefix-producer" '^amq\.gen-.*$' "^(amq\\.default|$c)\$" "^($r|amq\\.gen-.*)\$")
keda_permission=$(permission "$prefix-keda" '^$' '^$' '^$')
definitions=$(printf '{"vhosts":[{"name":%s}],"users":[%s,%s,%s],"permissions":[%s,%s,%s]}' \
  "$(json "$vhost")" "$worker_user" "$producer_user" "$keda_user" \
  "$worker_permission" "$producer_permission" "$keda_permission")

# From standard input (no file argument; 3.10 does not take "-"): the CLI sends it to the node, whereas
# a file path would be read by the broker's own user. The import runs asynchronously: wait for it.
printf '%s\n' "$definitions" | ctl import_definitions >/dev/null
expected=$(printf '%s\t%s\t%s\t%s\n' \
  "$prefix-keda" '^$' '^$' '^$' \
  "$prefix-producer" '^amq\.gen-.*$' "^(amq\\.default|$c)\$" "^($r|amq\\.gen-.*)\$" \
  "$prefix-worker" "^($j|$d|$p|$r|$c|$c\\.worker-[0-9a-f]+)\$" "^(amq\\.default|$c\\.worker-[0-9a-f]+)\$" "^($j|$d|$c|$c\\.worker-[0-9a-f]+)\$")
for _ in $(seq 1 60); do
  applied=$(ctl list_permissions -p "$vhost" 2>/dev/null | grep -F -x -c -f <(printf '%s\n' "$expected") || true)
  [ "$applied" = 3 ] && break
  sleep 0.5
done
if [ "$applied" != 3 ]; then
  echo "apply-users.sh: the broker did not show the permissions 30 s after the import; rabbitmqctl list_permissions -p '$vhost' says:" >&2
  ctl list_permissions -p "$vhost" >&2 || true
  exit 1
fi

echo "apply-users.sh: users $prefix-worker, $prefix-producer, $prefix-keda set on vhost '$vhost' of $node (queues $jobs, $results, $dlq, $parked)"
if [ "$example_passwords" = 1 ]; then
  echo "apply-users.sh: WARNING: example passwords from definitions.json in use; set QW_*_PASSWORD for anything but local testing" >&2
fi
