#!/bin/bash
# usage: run-worker.sh TAG PROMPTCACHEMB MODEL -> starts a worker on queues pc.TAG.*, runs aba.jsonl through qw batch, stops the worker
set -e
tag=$1; mb=$2; model=$3
W=/work/wt-promptcache/src/QueueWorker/bin/Release/net10.0/QueueWorker.dll
QW=/work/wt-promptcache/src/QueueWorker.Cli/bin/Release/net10.0/qw.dll
export RabbitMq__JobsQueue=pc.$tag.jobs RabbitMq__ResultsQueue=pc.$tag.results
env RabbitMq__JobsQueue=pc.$tag.jobs Http__Port=0 Model__Path=$model Inference__Threads=2 Inference__BatchThreads=2 Inference__Slots=1 \
  Inference__PromptCacheMb=$mb Logging__LogLevel__Default=Warning "Logging__LogLevel__QueueWorker.Inference=Debug" \
  dotnet $W > worker-$tag.log 2>&1 &
wpid=$!
for i in $(seq 1 300); do grep -q "Scheduler started" worker-$tag.log && break; kill -0 $wpid || exit 1; sleep 1; done
sleep 3
dotnet $QW batch aba.jsonl --max-in-flight 1 --out out-$tag.jsonl --set RabbitMq:JobsQueue=pc.$tag.jobs > qw-$tag.log 2>&1 || true
kill -TERM $wpid; wait $wpid || true
