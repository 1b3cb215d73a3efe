#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests against a real RabbitMQ and the real models.
# Installs and starts a local RabbitMQ (127.0.0.1) first when none is running. A missing broker or
# model fails the run: no test is skipped for want of a dependency.
set -euo pipefail
cd "$(dirname "$0")"

ops/rabbitmq/start-local.sh

# The cluster lane (tests with Lane=Cluster: a private 3-node cluster started by ops/rabbitmq/start-cluster.sh, node
# losses, several workers; ~7 min on a loaded 2-core machine, most of it starting the nodes) runs after the rest, not
# beside it: its three Erlang nodes and workers would slow the timed reliability tests. `./test.sh --cluster` runs it
# alone; `./test.sh <dotnet test args>` runs what the arguments select, in one go.
lane=all
if [ "${1:-}" = "--cluster" ]; then
  shift
  lane=cluster
fi

for model in stories260K.gguf llama-2-tiny-random.gguf; do
  if [ ! -f ../shared/models/$model ] && [ -z "${QW_TEST_MODELS_DIR:-}" ]; then
    echo "test.sh: ../shared/models/$model not found (set QW_TEST_MODELS_DIR to the folder holding the test models)" >&2
    exit 1
  fi
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
run_tests() { dotnet test QueueWorker.sln -c "${CONFIGURATION:-Release}" "$@" 2>&1 | tee -a "$log" || status=$?; }
if [ "$lane" = cluster ]; then
  run_tests --filter "Lane=Cluster" "$@"
elif [ $# -eq 0 ]; then
  run_tests --filter "Lane!=Cluster"
  echo "test.sh: the cluster lane (Lane=Cluster)"
  run_tests --filter "Lane=Cluster"
else
  run_tests "$@"
fi

# The published worker run the way the container image runs it (non-root, read-only files, env config).
if [ "$lane" != cluster ]; then
  echo "test.sh: ops/smoke-publish.sh"
  if ops/smoke-publish.sh > "$log.smoke" 2>&1; then echo "Passed!  - Failed:     0, Passed:     1, Skipped:     0, Total:     1 - smoke-publish" | tee -a "$log"
  else cat "$log.smoke"; echo "Failed!  - Failed:     1, Passed:     0, Skipped:     0, Total:     1 - smoke-publish" | tee -a "$log"; status=1; fi
  rm -f "$log.smoke"
fi

# The failed tests again at the very end, each with the first lines of its error (a CI log shows only its tail, and a
# failed worker test's message carries the worker's whole log).
awk '/^  Failed [^ ]+ \[/ { print; n = 0; inmsg = 0; next }
     /^  Error Message:/ { inmsg = 1; next }
     /^  (Stack Trace|Standard Output Messages):/ { inmsg = 0; next }
     inmsg && n < 16 { print "    " $0; n++ }' "$log" > "$log.failed" || true
if [ -s "$log.failed" ]; then echo "test.sh: failed tests"; cat "$log.failed"; fi
rm -f "$log.failed"

# One summary line over all test projects ("N passed, N failed, N skipped"), for people and CI alike.
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; if (s > 0) exit 3 }' "$log" || { echo "test.sh: tests were skipped; every test must run" >&2; status=1; }
exit $status
