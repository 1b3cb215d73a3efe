#!/usr/bin/env python3
# One raw-loop child process (qwbench raw-loop), 3 single jobs of ~86 prompt + 64 tokens: prefill/decode tok/s and major page faults per job.
# usage: raw-one-job.py mmap|read   (QW_MODEL, QW_BENCH_DLL override the paths)
import subprocess, json, sys, os, resource
mmap = sys.argv[1] == "mmap"
settings = json.dumps({"model":os.environ.get("QW_MODEL", "models/tinyllama-synth-q4_0.gguf"),"threads":2,"slots":4,"context_size":2048,"batch_size":512,"mmap":mmap})
p = subprocess.Popen(["dotnet",os.environ.get("QW_BENCH_DLL", "src/QueueWorker.Bench/bin/Release/net10.0/qwbench.dll"),"raw-loop","--settings",settings],stdin=subprocess.PIPE,stdout=subprocess.PIPE,text=True)
while True:
    l=p.stdout.readline()
    if not l: print("raw loop died (exit", p.wait(), ")"); sys.exit(1)
    if l.strip()=="ready": break
names=["Lily","Tom","Ben","Sue","Max","Mia"]
def majflt():
    return int(open(f"/proc/{p.pid}/stat").read().split(")")[1].split()[9])
out=[]
for rep in range(3):
    prompt=" ".join(f"{names[(rep+k)%6]} had a red ball number {k}." for k in range(12))+" One day,"
    f0=majflt()
    p.stdin.write(json.dumps({"prompts":[prompt],"max_tokens":64})+"\n"); p.stdin.flush()
    l=p.stdout.readline()
    if not l: print("raw loop died during a request (exit", p.wait(), ")"); sys.exit(1)
    r=json.loads(l); c=r["completion_tokens"][0]
    out.append(f"prefill {r['prompt_tokens'][0]/(r['prefill_ms']/1000):.0f} decode {(c-1)/(r['decode_ms']/1000):.1f} majflt {majflt()-f0}")
rss=open(f"/proc/{p.pid}/status").read().split("VmRSS:")[1].split("\n")[0].strip()
print(("mmap" if mmap else "read"), "; ".join(out), "RSS", rss)
p.stdin.close(); p.wait()
