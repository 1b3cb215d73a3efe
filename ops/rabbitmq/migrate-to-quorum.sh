#!/usr/bin/env bash
# Moves QueueWorker's queues from an older version's declaration (classic results and dead-letter queues, a jobs queue
# without x-dead-letter-strategy/x-overflow) to the quorum queues this version declares, keeping every message.
# The worker refuses to start on such a queue (PRECONDITION_FAILED, one critical line naming it and this script).
#
# A queue's type and arguments cannot be changed in place, so the messages are parked, the queue declared anew by the
# worker, and the messages brought back, with the shovel plugin (publisher confirms, so nothing is lost on the way):
#
#   1. stop the workers (and producers: a job published while the jobs queue is parked is refused; qw publishes
#      with mandatory and waits, others may lose it)
#   2. migrate-to-quorum.sh park llm.results llm.jobs.dlq [llm.jobs]
#        each queue's messages move to <queue>.migrating, then the (empty) queue is deleted
#   3. start one worker: it declares the queues as quorum queues
#   4. migrate-to-quorum.sh restore llm.results llm.jobs.dlq [llm.jobs]
#        each <queue>.migrating moves back into <queue>, then is deleted
#   migrate-to-quorum.sh status QUEUE...   type and message counts of each queue and its .migrating queue
#
# Environment: RABBITMQ_NODENAME (rabbit@localhost), QW_VHOST (/), QW_TIMEOUT seconds per shovel (600).
# Needs the rabbitmq_shovel plugin (rabbitmq-plugins enable rabbitmq_shovel) on the node; the shovel runs inside it.
# Re-running a step is safe: park moves what is left, restore brings back what is parked.
set -euo pipefail

NODE="${RABBITMQ_NODENAME:-rabbit@localhost}"
VHOST="${QW_VHOST:-/}"
TIMEOUT="${QW_TIMEOUT:-600}"
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "migrate-to-quorum: $*"; }
die() { echo "migrate-to-quorum: ERROR: $*" >&2; exit 1; }
ctl() { rabbitmqctl -n "$NODE" "$@"; }

# The shovel's own connection: the node itself ("amqp://" with the vhost, percent-encoded).
vhost_uri() { if [ "$VHOST" = "/" ]; then echo "amqp://"; else echo "amqp:///$(jq -rn --arg v "$VHOST" '$v|@uri')"; fi; }

# "type messages consumers" of a queue, or nothing when it does not exist.
queue_info() {
  ctl -q --no-table-headers list_queues -p "$VHOST" name type messages consumers 2>/dev/null \
    | awk -F'\t' -v q="$1" '$1 == q { print $2, $3, $4 }'
}

shovel_running() { ctl -q --no-table-headers list_parameters -p "$VHOST" 2>/dev/null | awk -F'\t' -v n="$1" '$1 == "shovel" && $2 == n' | grep -q .; }

# Moves every message of $1 into $2 with a one-off shovel (deleted by the broker once it moved the queue's length).
move() {
  local from="$1" to="$2" name="qw-migrate-$1" deadline body
  body="$(jq -cn --arg uri "$(vhost_uri)" --arg from "$from" --arg to "$to" \
    '{"src-uri": $uri, "src-queue": $from, "dest-uri": $uri, "dest-queue": $to, "ack-mode": "on-confirm", "src-delete-after": "queue-length"}')"
  ctl -q set_parameter -p "$VHOST" shovel "$name" "$body" >/dev/null
  deadline=$(( $(date +%s) + TIMEOUT ))
  while shovel_running "$name"; do
    [ "$(date +%s)" -lt "$deadline" ] || die "the shovel $name ($from -> $to) did not finish within ${TIMEOUT} s; see: rabbitmqctl -n $NODE shovel_status"
    sleep 1
  done
}

require_shovel() {
  ctl -q eval 'lists:keymember(rabbitmq_shovel, 1, application:which_applications()).' 2>/dev/null | grep -q true \
    || die "the rabbitmq_shovel plugin is not enabled on $NODE: rabbitmq-plugins -n $NODE enable rabbitmq_shovel"
}

# Deletes queue $1 (of type $2), found empty just before. Quorum queues in 3.10 do not support delete's if-empty
# flag (the CLI reports it and deletes nothing): with the workers and producers stopped, nothing arrives meanwhile.
delete_empty() {
  if [ "$2" = "quorum" ]; then
    ctl -q delete_queue -p "$VHOST" "$1" >/dev/null
  else
    ctl -q delete_queue -p "$VHOST" --if-empty "$1" >/dev/null
  fi
  [ -z "$(queue_info "$1")" ] || die "$1 could not be deleted (not empty?): run the step again"
}

park() {
  local q="$1" info type messages consumers
  info="$(queue_info "$q")"
  if [ -z "$info" ]; then
    say "$q does not exist: nothing to park"
    return 0
  fi
  read -r type messages consumers <<< "$info"
  [ "$consumers" -eq 0 ] || die "$q has $consumers consumer(s): stop the workers first"
  say "parking $q ($type, $messages message(s)) in $q.migrating"
  [ "$messages" -eq 0 ] || move "$q" "$q.migrating"
  # The counts rabbitmqctl reports lag a little behind for quorum queues: wait for an empty queue before deleting it.
  local deadline=$(( $(date +%s) + 60 ))
  until [ "$(queue_info "$q" | awk '{print $2}')" = "0" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$q still holds messages after the shovel: not deleted; run park again"
    sleep 1
  done
  delete_empty "$q" "$type"
  say "$q deleted (its messages are in $q.migrating): start a worker so it declares $q, then run: $0 restore $q"
}

restore() {
  local q="$1" info type messages parked
  info="$(queue_info "$q")"
  [ -n "$info" ] || die "$q does not exist yet: start one worker (it declares $q), then restore"
  read -r type messages _ <<< "$info"
  [ "$type" = "quorum" ] || die "$q is a $type queue, not quorum: park it first, and start a worker of this version"
  info="$(queue_info "$q.migrating")"
  if [ -z "$info" ]; then
    say "$q.migrating does not exist: nothing to restore into $q"
    return 0
  fi
  read -r _ parked _ <<< "$info"
  say "restoring $parked message(s) from $q.migrating into $q"
  [ "$parked" -eq 0 ] || move "$q.migrating" "$q"
  local deadline=$(( $(date +%s) + 60 ))
  until [ "$(queue_info "$q.migrating" | awk '{print $2}')" = "0" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$q.migrating still holds messages: not deleted; run restore again"
    sleep 1
  done
  delete_empty "$q.migrating" "$(queue_info "$q.migrating" | awk '{print $1}')"
  say "$q restored; $q.migrating deleted"
}

status() {
  local q info
  for q in "$1" "$1.migrating"; do
    info="$(queue_info "$q")"
    if [ -n "$info" ]; then echo "$q: $(awk '{print $1 " queue, " $2 " message(s), " $3 " consumer(s)"}' <<< "$info")"; else echo "$q: does not exist"; fi
  done
}

command="${1:-}"
shift || true
[ "$#" -gt 0 ] || { echo "usage: $0 park|restore|status QUEUE...   (environment: RABBITMQ_NODENAME, QW_VHOST)" >&2; exit 2; }
command -v jq >/dev/null 2>&1 || die "jq is needed (apt-get install jq)"
case "$command" in
  park) require_shovel; for q in "$@"; do park "$q"; done ;;
  restore) require_shovel; for q in "$@"; do restore "$q"; done ;;
  status) for q in "$@"; do status "$q"; done ;;
  *) echo "usage: $0 park|restore|status QUEUE..." >&2; exit 2 ;;
esac
