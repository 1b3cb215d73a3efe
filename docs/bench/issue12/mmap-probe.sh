#!/bin/bash
# Starts one worker with Model__UseMmap=$1, runs a job, idles $2 s, runs a job; prints the model mapping's resident
# pages (smaps) and the process's page faults around each job.
mode=$1; idle=$2; model=${3:-/work/shared/models/stories260K.gguf}
q=perfprobe.$mode.$$
W=/work/wt-perf/src/QueueWorker/bin/Release/net10.0/QueueWorker.dll
QW=/work/wt-perf/src/QueueWorker.Cli/bin/Release/net10.0/qw.dll
Model__Path=$model Model__UseMmap=$mode RabbitMq__JobsQueue=$q RabbitMq__ResultsQueue=$q.results Http__Port=0 \
  dotnet $W > /tmp/qwperf/worker.$mode.log 2>&1 &
pid=$!
for i in $(seq 1 120); do grep -q 'Consum\|consum' /tmp/qwperf/worker.$mode.log && break; sleep 1; done
faults() { awk '{print "minflt=" $10, "majflt=" $12}' /proc/$pid/stat; }
modelrss() { awk -v f="$(basename $model)" '$0 ~ f {on=1; next} /^[0-9a-f]+-[0-9a-f]+ /{on=0} on && /^Rss:/ {s+=$2} END {print "model_mapping_rss_kb=" s+0}' /proc/$pid/smaps; }
job() { dotnet $QW submit "Once upon a time" --temperature 0 --max-tokens 64 --json --set RabbitMq:JobsQueue=$q --set RabbitMq:ResultsQueue=$q.results 2>/dev/null | tr -d '\n' | grep -o '"timings":{[^}]*}'; }
echo "[$mode] before job1: $(faults) $(modelrss) $(grep -E 'RssAnon|RssFile' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ' ')"
job
echo "[$mode] after job1: $(faults) $(modelrss)"
sleep $idle
echo "[$mode] after ${idle}s idle: $(faults) $(modelrss) $(grep -E 'RssAnon|RssFile' /proc/$pid/status | tr -s ' \t' ' ' | tr '\n' ' ')"
job
echo "[$mode] after job2: $(faults) $(modelrss)"
kill -TERM $pid; wait $pid
