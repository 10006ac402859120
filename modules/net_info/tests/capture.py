#!/usr/bin/env python3
"""Capture a golden case for net_info from a lab host: run, inside the lab, exactly the
commands net_info runs for the given options (the nmcli list call, the keyfiles it names,
`ip -j -d addr show`, the two virsh batches with the test double's marker) and write
what the real tools answered:

  tests/data/SET/      the tools' outputs (shared by the cases made from one lab state)
  tests/cases/CASE/    args.json, calls.json, files.json (result.json: KVMNET_BLESS=1)

  KVMNET_LAB_PREFIX=... capture.py LAB SET CASE [--gather a,b] [--check] [--uri URI]
                         [--no-keyfile UUID] [--between 'CMD ...'] [--force]

--no-keyfile plays a profile stored another way than a keyfile (its properties then come
from `nmcli con show`); --between runs a command in the lab between the two virsh
processes (an object that goes away in between).

Run as root with tests/lab on the path (it is added below). The commands mirror
src/current.rs and virtxml's inventory.rs; a mismatch shows as a failing golden case.
"""

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "tests" / "lab"))
import kvmlab  # noqa: E402

MARK = "@@kvmnet-000102030405060708090a0b0c0d0e0f@@"
LIST = ["nmcli", "-t", "-f", "UUID,TYPE,DEVICE,STATE,FILENAME", "con", "show"]
IP = ["ip", "-j", "-d", "addr", "show"]
SETTINGS = "connection,bridge,macvlan,802-3-ethernet"
ENV = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")


def quote(a: str) -> str:
    return "'" + a.replace("'", "'\\''") + "'"


def batch(uri, cmds):
    script = f" ; echo {MARK} ; ".join(" ".join(quote(a) for a in c) for c in cmds)
    return ["virsh", "-q", "-c", uri, script]


def steady(text):
    return [x for x in text.splitlines() if not x.startswith("CPU time:")]


def names(section):
    return [x.strip() for x in section.splitlines() if x.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lab")
    ap.add_argument("set")
    ap.add_argument("case")
    ap.add_argument("--gather", default=None)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--uri", default="qemu:///system")
    ap.add_argument("--no-keyfile", action="append", default=[])
    ap.add_argument("--between", default=None)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    lab = kvmlab.Lab.get(a.lab)
    gather = a.gather.split(",") if a.gather else ["bridges", "macvtaps", "networks", "guests"]
    data = HERE / "data" / a.set
    case = HERE / "cases" / a.case
    data.mkdir(parents=True, exist_ok=True)
    case.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(data, case)
    calls, files = [], {}

    def keep(path, text):
        # One lab state per SET: a later capture must not change what earlier cases read.
        # What moves by itself (bridge timers in `ip -d`, a guest's CPU time) is not a
        # change of the lab: the first capture stays.
        if path.exists() and not a.force:
            if path.name == "ip-addr.json" or steady(path.read_text()) == steady(text):
                return
            sys.exit(f"{path} exists with other content (the lab changed?): use another SET, or --force")
        path.write_text(text)

    def run(argv, out_name):
        p = lab.exec(argv, check=False, env=ENV)
        keep(data / out_name, p.stdout)
        call = {"argv": argv, "stdout": {"file": f"{rel}/{out_name}"}}
        if p.returncode:
            call["rc"] = p.returncode
        if p.stderr:
            call["stderr"] = p.stderr
        calls.append(call)
        return p

    if "bridges" in gather or "macvtaps" in gather:
        out = run(LIST, "nmcli-list.out").stdout
        (data / "keyfiles").mkdir(exist_ok=True)
        unread = []
        for line in out.splitlines():
            fields = line.replace("\\:", "\0").split(":")
            if len(fields) < 5 or fields[1] == "loopback":
                continue
            if fields[0] in a.no_keyfile or not fields[4].endswith(".nmconnection"):
                unread.append(fields[0])
                continue
            path = fields[4].replace("\0", ":")
            text = lab.exec(["cat", path]).stdout
            base = path.replace("/", "_").strip("_")
            keep(data / "keyfiles" / base, text)
            files[path] = {"file": f"{rel}/keyfiles/{base}"}
        if unread:
            show = ["nmcli", "-t", "-f", SETTINGS, "con", "show"]
            for u in unread:
                show += ["uuid", u]
            run(show, "nmcli-show.out")
    if set(gather) & {"bridges", "macvtaps", "guests"}:
        run(IP, "ip-addr.json")
    if set(gather) & {"networks", "guests"}:
        doms = "guests" in gather
        variant = "all" if doms else "networks"
        first = [["net-list", "--all", "--name"]] + ([["list", "--all", "--name"]] if doms else [])
        out = run(batch(a.uri, first), f"virsh-names-{variant}.out").stdout
        sec = (out.split(MARK) + ["", ""])[:2]
        nets, dl = names(sec[0]), names(sec[1]) if doms else []
        detail = []
        for n in nets:
            detail += [["net-info", "--network", n], ["net-dumpxml", "--inactive", "--network", n],
                       ["net-dumpxml", "--network", n]]
        for d in dl:
            detail += [["dominfo", "--domain", d], ["dumpxml", "--inactive", "--domain", d],
                       ["dumpxml", "--domain", d]]
        if a.between:
            lab.exec(["sh", "-c", a.between])
        if detail:
            run(batch(a.uri, detail), f"virsh-detail-{variant}.out")
    args = {"_ansible_check_mode": a.check, "_ansible_diff": a.check}
    if a.gather:
        args["gather"] = gather
    if a.uri != "qemu:///system":
        args["uri"] = a.uri
    (case / "args.json").write_text(json.dumps(args, indent=1) + "\n")
    (case / "calls.json").write_text(json.dumps(calls, indent=1) + "\n")
    if files:
        (case / "files.json").write_text(json.dumps(files, indent=1) + "\n")
    print(f"{case}: {len(calls)} calls, {len(files)} files")


if __name__ == "__main__":
    main()
