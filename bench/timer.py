"""Runs one command N times inside a lab and prints JSON: wall time of each run, whether
each run reported changed/failed, and the last run's output. Timing inside the lab keeps
the cost of entering the lab's namespaces out of the figures."""
import json
import subprocess
import sys
import time

runs = int(sys.argv[1])
cmds = json.loads(sys.argv[2])  # one "run" may be several commands (a peer's tasks)
times, changed, failed, last = [], [], [], []
for _ in range(runs):
    t0 = time.perf_counter()
    outs = [subprocess.run(c, capture_output=True, text=True) for c in cmds]
    times.append(time.perf_counter() - t0)
    res = []
    for o in outs:
        try:
            res.append(json.loads(o.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            res.append({"failed": True, "msg": (o.stdout + o.stderr)[-2000:]})
    changed.append(any(r.get("changed") for r in res))
    failed.append(any(r.get("failed") for r in res))
    last = res
print(json.dumps({"times": times, "changed": changed, "failed": failed, "last": last}))
