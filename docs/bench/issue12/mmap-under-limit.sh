#!/usr/bin/env bash
# Model:UseMmap under a container memory limit: runs raw-one-job.py (one raw-loop process, 3 jobs) in a memory cgroup
# this script creates, for each limit (MiB) and each load mode (mmap / read into memory), and prints tok/s, major page
# faults per job and whether the kernel OOM-killed it. Needs root and cgroup v1's memory controller (as on the project
# machine) or cgroup v2 (memory.max). From the repository root, after `dotnet build -c Release` and `qwbench model synth`:
#   QW_MODEL=models/tinyllama-synth-q4_0.gguf docs/bench/issue12/mmap-under-limit.sh 900 800 720 680
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -d /sys/fs/cgroup/memory ]; then
  cg=/sys/fs/cgroup/memory/qw-mmap-$$; mkdir "$cg"; limit_file=memory.limit_in_bytes
else
  cg=/sys/fs/cgroup/qw-mmap-$$; mkdir "$cg"; limit_file=memory.max
fi
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
for lim in "$@"; do
  echo $((lim * 1024 * 1024)) > "$cg/$limit_file"
  for mode in mmap read; do
    sync; echo 1 > /proc/sys/vm/drop_caches || true   # every run starts with the model out of the page cache
    echo -n "limit $lim MiB, $mode: "
    bash -c "echo \$\$ > '$cg/cgroup.procs'; exec timeout 600 python3 '$here/raw-one-job.py' $mode" 2>&1 | tail -1 || true
  done
done
