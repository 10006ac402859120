#!/usr/bin/env python3
"""Capture what virtxml's readers get from virsh, in a lab host of one userland:

  KVMNET_LAB_PREFIX=... capture.py USERLAND      (bullseye, bookworm or trixie; as root)

starts a lab host of that userland, gives it libvirt's default network (the lab's own), a
bridge network `host-bridge` on a kernel bridge br0, a running guest `g1` and a shut-off
guest `g2`, each with one interface of every type kvmnet manages (network `default`, bridge
`br0`, direct on ens32 in bridge mode), then runs exactly the virsh batches the readers run
(netstate.rs, domain.rs, inventory.rs; the test double's marker) and writes what virsh
answered to tests/data/libvirt-VERSION/: NAME.out (stdout), NAME.err (stderr, when any)
and calls.json (argv, rc and those files per call, in order). The lab is torn down after.

tests/captured.rs feeds every set to the readers. The commands here mirror the readers'; a
mismatch shows as a failing test (the test double compares argv).
"""

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests" / "lab"))
import kvmlab  # noqa: E402

MARK = "@@kvmnet-000102030405060708090a0b0c0d0e0f@@"
URI = "qemu:///system"
ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
IFACES = [
    "<interface type='network'><mac address='52:54:00:c0:00:{n}1'/><source network='default'/>"
    "<model type='virtio'/><rom enabled='no'/></interface>",
    "<interface type='bridge'><mac address='52:54:00:c0:00:{n}2'/><source bridge='br0'/>"
    "<model type='e1000'/><rom enabled='no'/></interface>",
    "<interface type='direct'><mac address='52:54:00:c0:00:{n}3'/>"
    "<source dev='ens32' mode='bridge'/><rom enabled='no'/></interface>",
]
HOST_BRIDGE = ("<network><name>host-bridge</name><forward mode='bridge'/>"
               "<bridge name='br0'/></network>")


def quote(a: str) -> str:
    return "'" + a.replace("'", "'\\''") + "'"


def batch(cmds):
    script = f" ; echo {MARK} ; ".join(" ".join(quote(a) for a in c) for c in cmds)
    return ["virsh", "-q", "-c", URI, script]


def netstate(name):
    return [["net-info", "--network", name], ["net-dumpxml", "--inactive", "--network", name],
            ["net-dumpxml", "--network", name]]


def domain(name, network=None):
    cmds = [["dumpxml", "--inactive", "--domain", name], ["dumpxml", "--domain", name],
            ["net-list", "--all", "--name"], ["net-list", "--name"]]
    return cmds + ([["net-dumpxml", "--network", network]] if network else [])


def main():
    userland = sys.argv[1]
    lab = kvmlab.Lab.up(f"cap{userland[:3]}", userland=userland)
    try:
        capture(lab)
    finally:
        lab.down()


def capture(lab):
    version = lab.info["versions"]["libvirt"].split("-")[0]
    data = HERE / "data" / f"libvirt-{version}"
    data.mkdir(parents=True, exist_ok=True)
    v = ["virsh", "-q", "-c", URI]
    lab.exec(["ip", "link", "add", "br0", "type", "bridge"])
    lab.exec(["ip", "link", "set", "dev", "br0", "up"])
    lab.exec([*v, "net-define", "/dev/stdin"], input=HOST_BRIDGE)
    lab.exec([*v, "net-start", "--network", "host-bridge"])
    for n, start in (("1", True), ("2", False)):
        lab.define_guest(f"g{n}", [i.format(n=n) for i in IFACES], start=start)
    calls = []

    def run(name, argv):
        p = lab.exec(argv, check=False, env=ENV)
        (data / f"{name}.out").write_text(p.stdout)
        call = {"name": name, "argv": argv, "rc": p.returncode, "stdout": f"{name}.out"}
        if p.stderr:
            (data / f"{name}.err").write_text(p.stderr)
            call["stderr"] = f"{name}.err"
        calls.append(call)
        return p

    run("netstate-default", batch(netstate("default")))
    run("netstate-host-bridge", batch(netstate("host-bridge")))
    run("netstate-missing", batch(netstate("missing")))
    run("domain-g1", batch(domain("g1", "default")))
    run("domain-g2", batch(domain("g2", "host-bridge")))
    run("domain-nope", batch(domain("nope")))
    run("domain-nope-list", batch([["list", "--all", "--name"]]))
    out = run("inventory-names", batch([["net-list", "--all", "--name"],
                                        ["list", "--all", "--name"]])).stdout
    nets, doms = ([x.strip() for x in s.splitlines() if x.strip()]
                  for s in (out.split(MARK) + [""])[:2])
    detail = [c for n in nets for c in netstate(n)]
    for d in doms:
        detail += [["dominfo", "--domain", d], ["dumpxml", "--inactive", "--domain", d],
                   ["dumpxml", "--domain", d]]
    run("inventory-detail", batch(detail))
    versions = lab.info["versions"]
    (data / "calls.json").write_text(json.dumps(
        {"userland": lab.info["userland"], "libvirt": versions["libvirt"],
         "qemu": versions["qemu"], "calls": calls}, indent=1) + "\n")
    print(f"{data}: {len(calls)} calls")


if __name__ == "__main__":
    main()
