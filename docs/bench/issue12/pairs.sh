#!/bin/bash
# Interleaved pairs (mmap on, off, on, off, …): separate worker processes, same parameters, 3 distinct jobs each.
model=/tmp/qwperf/llama-tiny-q4_0.gguf
W=/work/wt-perf/src/QueueWorker/bin/Release/net10.0/QueueWorker.dll
QW=/work/wt-perf/src/QueueWorker.Cli/bin/Release/net10.0/qw.dll
for pair in 1 2 3 4; do
  for mode in true false; do
    q=perfpairs.$mode.$pair.$$
    Model__Path=$model Model__UseMmap=$mode RabbitMq__JobsQueue=$q RabbitMq__ResultsQueue=$q.results Http__Port=0 \
      dotnet $W > /tmp/qwperf/pw.log 2>&1 &
    pid=$!
    for i in $(seq 1 120); do grep -q 'onsum' /tmp/qwperf/pw.log && break; sleep 1; done
    for j in 1 2 3; do
      t=$(dotnet $QW submit "Job $pair $j: the quick brown fox jumps over the lazy dog near the river bank at dawn" --temperature 0 --max-tokens 64 --json \
          --set RabbitMq:JobsQueue=$q --set RabbitMq:ResultsQueue=$q.results 2>/dev/null | tr -d '\n' | grep -o '"timings":{[^}]*}')
      echo "pair=$pair mmap=$mode job=$j load=$(cut -d' ' -f1 /proc/loadavg) $t"
    done
    kill -TERM $pid; wait $pid
  done
done
