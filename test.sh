#!/usr/bin/env bash
# Runs every test: unit tests, and integration tests against a real RabbitMQ and the real models.
# Installs and starts a local RabbitMQ (127.0.0.1) first when none is running. A missing broker or
# model fails the run: no test is skipped for want of a dependency.
set -euo pipefail
cd "$(dirname "$0")"

ops/rabbitmq/start-local.sh

# ./test.sh --cluster [args]: only the cluster lane (tests with Lane=Cluster: a private 3-node cluster started by
# ops/rabbitmq/start-cluster.sh, node losses, several workers). The default run includes it.
if [ "${1:-}" = "--cluster" ]; then
  shift
  set -- --filter "Lane=Cluster" "$@"
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
dotnet test QueueWorker.sln -c "${CONFIGURATION:-Release}" "$@" 2>&1 | tee "$log" || status=$?

# The published worker run the way the container image runs it (non-root, read-only files, env config).
echo "test.sh: ops/smoke-publish.sh"
if ops/smoke-publish.sh > "$log.smoke" 2>&1; then echo "Passed!  - Failed:     0, Passed:     1, Skipped:     0, Total:     1 - smoke-publish" | tee -a "$log"
else cat "$log.smoke"; echo "Failed!  - Failed:     1, Passed:     0, Skipped:     0, Total:     1 - smoke-publish" | tee -a "$log"; status=1; fi
rm -f "$log.smoke"

# One summary line over all test projects ("N passed, N failed, N skipped"), for people and CI alike.
awk '/^(Passed|Failed)!/ { for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1)); if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s; if (s > 0) exit 3 }' "$log" || { echo "test.sh: tests were skipped; every test must run" >&2; status=1; }
exit $status
