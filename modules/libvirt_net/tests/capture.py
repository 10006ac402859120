#!/usr/bin/env python3
"""Capture a golden case for libvirt_net from a lab host: run the module binary in the lab
with the case's args.json, with a recording `virsh` first on PATH that runs the real one
and notes each call (argv, stdin, stdout, stderr, exit status), and write what libvirt
answered as the case's calls.json, the batch marker replaced by the test double's:

  KVMNET_LAB_PREFIX=... capture.py LAB CASE        (as root; the lab is already set up)

Files the module reads itself (sysfs, for definitions that name host devices) are not
recorded: such a case needs files.json written by hand. result.json: KVMNET_BLESS=1.
"""

import json
import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT / "tests" / "lab"))
import kvmlab  # noqa: E402

MARK = "@@kvmnet-000102030405060708090a0b0c0d0e0f@@"
RANDOM_MARK = re.compile(r"@@kvmnet-[0-9a-f]{32}@@")
BINARY = ROOT / "target" / "x86_64-unknown-linux-musl" / "release" / "libvirt_net"

SHIM = """#!/usr/bin/python3
import json, subprocess, sys
data = sys.stdin.read()
p = subprocess.run(["/usr/bin/virsh", *sys.argv[1:]], input=data, capture_output=True, text=True)
with open(LOG, "a") as f:
    f.write(json.dumps({"argv": ["virsh", *sys.argv[1:]], "stdin": data, "rc": p.returncode,
                        "stdout": p.stdout, "stderr": p.stderr}) + "\\n")
sys.stdout.write(p.stdout)
sys.stderr.write(p.stderr)
sys.exit(p.returncode)
"""


def fix(text):
    return RANDOM_MARK.sub(MARK, text)


def main():
    lab = kvmlab.Lab.get(sys.argv[1])
    case = HERE / "cases" / sys.argv[2]
    args = json.loads((case / "args.json").read_text())
    full = {"_ansible_check_mode": False, "_ansible_diff": False, "_ansible_no_log": False,
            **args}
    work = Path(tempfile.mkdtemp(prefix="kvmnet-capture-", dir="/tmp"))
    log = work / "log.jsonl"
    (work / "virsh").write_text(SHIM.replace("LOG", repr(str(log))))
    (work / "virsh").chmod(0o755)
    (work / "args.json").write_text(json.dumps(full))
    env = dict(os.environ, PATH=f"{work}:/usr/sbin:/usr/bin:/sbin:/bin")
    p = lab.exec([str(BINARY), str(work / "args.json")], check=False, env=env)
    calls = []
    for line in log.read_text().splitlines():
        c = json.loads(line)
        call = {"argv": [fix(a) for a in c["argv"]]}
        if c["rc"]:
            call["rc"] = c["rc"]
        call["stdout"] = fix(c["stdout"])
        if c["stderr"]:
            call["stderr"] = c["stderr"]
        if c["stdin"]:
            call["stdin"] = c["stdin"]
        calls.append(call)
    (case / "calls.json").write_text(json.dumps(calls, indent=1) + "\n")
    for f in work.iterdir():
        f.unlink()
    work.rmdir()
    print(p.stdout)
    print(f"{case}: {len(calls)} calls")


if __name__ == "__main__":
    main()
