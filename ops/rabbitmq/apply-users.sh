#!/usr/bin/env bash
# Applies QueueWorker's least-privilege users to a running RabbitMQ node with rabbitmqctl: the same
# users and permission regexes as definitions.json (which a containerised broker loads at boot).
# Idempotent: re-running resets passwords, tags and permissions to what this script says.
#
#   queueworker-worker    configure its three queues (it declares them at startup), write to the
#                         default exchange (results and reply_to queues), read the jobs queue only
#   queueworker-producer  configure/read server-named reply queues (amq.gen-*), write to the default
#                         exchange (jobs), read the results queue
#   queueworker-keda      management tag, no AMQP rights: reads queue lengths over the HTTP API
#
# Environment (defaults in brackets):
#   RABBITMQ_NODENAME [rabbit@localhost]   node to talk to
#   QW_VHOST [/]                           virtual host; created when missing
#   QW_JOBS_QUEUE [llm.jobs]  QW_RESULTS_QUEUE [llm.results]  QW_DEAD_LETTER_QUEUE [<jobs>.dlq]
#                                          must equal the worker's RabbitMq:* settings
#   QW_USER_PREFIX [queueworker]           users are <prefix>-worker, <prefix>-producer, <prefix>-keda
#   QW_WORKER_PASSWORD, QW_PRODUCER_PASSWORD, QW_KEDA_PASSWORD
#                                          default to the EXAMPLE passwords of definitions.json
#                                          (ChangeMe...): replace them on any broker but a throwaway one.
# rabbitmqctl takes passwords as arguments (briefly visible in `ps` on this host); on shared hosts
# prefer importing definitions.json with hashes made by hash-password.sh.
set -euo pipefail

node=${RABBITMQ_NODENAME:-rabbit@localhost}
vhost=${QW_VHOST:-/}
jobs=${QW_JOBS_QUEUE:-llm.jobs}
results=${QW_RESULTS_QUEUE:-llm.results}
dlq=${QW_DEAD_LETTER_QUEUE:-$jobs.dlq}
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

if ! ctl await_startup >/dev/null 2>&1; then
  echo "apply-users.sh: RabbitMQ node $node is not running (see ops/rabbitmq/start-local.sh)" >&2
  exit 1
fi

if ! ctl list_vhosts name | grep -qxF -- "$vhost"; then
  ctl add_vhost "$vhost"
fi

ensure_user() { # name password tags...
  local name=$1 password=$2
  shift 2
  if ctl list_users | cut -f1 | grep -qxF -- "$name"; then
    ctl change_password "$name" "$password"
  else
    ctl add_user "$name" "$password"
  fi
  ctl set_user_tags "$name" "$@"
}

j=$(re_escape "$jobs"); r=$(re_escape "$results"); d=$(re_escape "$dlq")

ensure_user "$prefix-worker" "$worker_password"
ctl set_permissions -p "$vhost" "$prefix-worker" "^($j|$d|$r)\$" '^amq\.default$' "^$j\$"

ensure_user "$prefix-producer" "$producer_password"
ctl set_permissions -p "$vhost" "$prefix-producer" '^amq\.gen-.*$' '^amq\.default$' "^($r|amq\\.gen-.*)\$"

ensure_user "$prefix-keda" "$keda_password" management
ctl set_permissions -p "$vhost" "$prefix-keda" '^$' '^$' '^$'

echo "apply-users.sh: users $prefix-worker, $prefix-producer, $prefix-keda set on vhost '$vhost' of $node (queues $jobs, $results, $dlq)"
if [ "$example_passwords" = 1 ]; then
  echo "apply-users.sh: WARNING: example passwords from definitions.json in use; set QW_*_PASSWORD for anything but local testing" >&2
fi
