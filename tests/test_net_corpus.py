"""libvirt_net against the project's corpus of network definitions (tests/corpus/networks/,
issue 13), in a lab host with the real libvirtd of the userland KVMNET_LAB_USERLAND selects.

For every definition: check mode plans it and defines nothing; it is defined (and started
where the lab can); a rerun and a check-mode rerun are unchanged; every other spelling of
the same network is unchanged; a one-value change shows in check mode as a diff of exactly
the changed lines, in libvirt's own spelling on both sides (the lines removed are those
holding the change's `from` text, the lines added the same with `to`); the change applies
and a rerun is unchanged; absent removes it. Each step is checked for every definition
even when an earlier one failed, and the counts per step are written to
/tmp/kvmnet-net-corpus-<lab prefix>-<userland>.json (the prefix keeps sessions apart)."""

import contextlib
import difflib
import json
import os
from pathlib import Path

import pytest
from conftest import run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

CORPUS = Path(__file__).resolve().parent / "corpus" / "networks"
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
STEPS = ["check", "define", "rerun", "alternates", "minimal diff", "change", "absent"]
RESULTS: dict = {}
SPELLINGS: dict = {}  # the files whose one-value change went through the minimal-diff step


def cases():
    return sorted(p.name for p in CORPUS.iterdir() if (p / "net.xml").is_file())


@pytest.fixture(scope="module")
def host(lab):
    for b in ("br0", "br1"):
        lab.exec(["ip", "link", "add", b, "type", "bridge"])
        lab.exec(["ip", "link", "set", "dev", b, "up"])
    yield lab
    userland = lab.info["userland"]
    counts = {s: sum(1 for r in RESULTS.values() if r.get(s) is True) for s in STEPS}
    report = {"userland": userland, "libvirt": lab.info["versions"]["libvirt"],
              "definitions": len(RESULTS), "passed": counts,
              "minimal_diff_spellings": SPELLINGS,
              "failures": {n: {s: v for s, v in r.items() if v is not True}
                           for n, r in RESULTS.items() if any(v is not True for v in r.values())}}
    Path(f"/tmp/kvmnet-net-corpus-{lab.prefix}-{userland}.json").write_text(
        json.dumps(report, indent=1))


PCI_DEVICES = "/sys/bus/pci/devices"
# Run in the lab (its own mount namespace): /sys/bus/pci/devices becomes a tmpfs with a link
# to every real device and, for each address given, a directory with a `physfn` link.
FAKE_VFS = f"""set -e
links=$(for e in {PCI_DEVICES}/*; do [ -e "$e" ] && echo "${{e##*/}} $(readlink -f "$e")"; done)
mount -t tmpfs kvmnet-fake-vfs {PCI_DEVICES}
echo "$links" | while read -r n t; do [ -n "$n" ] && ln -s "$t" "{PCI_DEVICES}/$n"; done
for a in "$@"; do mkdir "{PCI_DEVICES}/$a"; ln -s /sys/devices "{PCI_DEVICES}/$a/physfn"; done
"""


@contextlib.contextmanager
def fake_vfs(lab, addresses):
    """libvirt (7.0, 9.0 and 11.3 alike) defines a hostdev network over PCI addresses only
    when each is an SR-IOV virtual function, i.e. /sys/bus/pci/devices/ADDR/physfn exists;
    the lab has no SR-IOV device. For the case's duration the lab shows these addresses as
    VFs, in its own mount namespace only (the machine's /sys is untouched)."""
    if not addresses:
        yield
        return
    own = lab.exec(["readlink", "/proc/self/ns/mnt"]).stdout.strip()
    assert own != os.readlink("/proc/self/ns/mnt"), "refusing to mount outside a lab"
    assert lab.exec(["findmnt", "-n", "-o", "FSTYPE", PCI_DEVICES], check=False).stdout == ""
    try:
        lab.exec(["sh", "-c", FAKE_VFS, "fake-vfs", *addresses])
        yield
    finally:
        lab.exec(["umount", PCI_DEVICES], check=False)


def defined(lab, name):
    return name in lab.exec([*VIRSH, "net-list", "--all", "--name"]).stdout.split()


def changed_lines(before: str, after: str) -> list:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def is_the_change(lines: list, old: str, to: str) -> bool:
    """The diff's changed lines are exactly the lines holding `old` (removed) and the same
    lines with `to` (added): nothing else, in libvirt's spelling on both sides."""
    removed = "\n".join(x[1:] for x in lines if x.startswith("-"))
    added = "\n".join(x[1:] for x in lines if x.startswith("+"))
    return (len(lines) == 2 * old.count("\n") + 2 and old in removed
            and removed.replace(old, to) == added)


class Steps:
    """Runs the steps of one definition; a failed step is recorded, later ones still run."""

    def __init__(self, name):
        self.name = name
        self.result = RESULTS.setdefault(name, {})

    def check(self, step, ok, detail):
        if self.result.get(step, True) is True:
            self.result[step] = True if ok else str(detail)[:2000]
        return ok


@pytest.mark.parametrize("name", cases())
def test_corpus_definition(host, name):
    case = json.loads((CORPUS / name / "case.json").read_text())
    with fake_vfs(host, case.get("vfs", [])):
        run_steps(host, name, case)


def run_steps(host, name, case):
    folder = CORPUS / name
    xml = (folder / "net.xml").read_text()
    state = case["state"]
    args = {"name": name, "xml": xml, "state": state}
    s = Steps(name)

    r = run_module(host, "libvirt_net", args, check=True, diff=True)
    s.check("check", r["changed"] is True and not r.get("failed") and not defined(host, name), r)

    r = run_module(host, "libvirt_net", args)
    s.check("define", r["changed"] is True and not r.get("failed") and defined(host, name), r)
    if state == "active":
        info = host.exec([*VIRSH, "net-info", "--network", name], check=False).stdout
        s.check("define", "Active:         yes" in info, info)

    for check in (False, True):
        r = run_module(host, "libvirt_net", args, check=check)
        s.check("rerun", r["changed"] is False and not r.get("failed"), r)

    for alt in sorted(folder.glob("alt-*.xml")):
        for check in (True, False):
            r = run_module(host, "libvirt_net", {**args, "xml": alt.read_text()}, check=check)
            s.check("alternates", r["changed"] is False and not r.get("failed"),
                    {"alternate": alt.name, "result": r})

    # The one-value change, written as net.xml and as every alternate that holds the
    # changed text: the diff shows the changed lines only, whatever the spelling.
    old, to = case["change"]["from"], case["change"]["to"]
    spellings = {"net.xml": xml, **{a.name: a.read_text()
                                    for a in sorted(folder.glob("alt-*.xml"))}}
    s.check("minimal diff", old in xml, f"the change's from text is not in net.xml: {old!r}")
    for file, text in ((f, t) for f, t in spellings.items() if old in t):
        SPELLINGS.setdefault(name, []).append(file)
        r = run_module(host, "libvirt_net", {**args, "xml": text.replace(old, to)}, check=True,
                       diff=True)
        if s.check("minimal diff", r["changed"] is True and not r.get("failed"), r):
            d = r["diff"][0] if isinstance(r["diff"], list) else r["diff"]
            lines = changed_lines(d["before"], d["after"])
            s.check("minimal diff", is_the_change(lines, old, to),
                    {"spelling": file, "changed lines": lines, "from": old, "to": to})
    new = xml.replace(old, to)
    changed = {**args, "xml": new}

    r = run_module(host, "libvirt_net", changed)
    ok = r["changed"] is True and not r.get("failed")
    r2 = run_module(host, "libvirt_net", changed)
    s.check("change", ok and r2["changed"] is False and not r2.get("failed"), [r, r2])

    r = run_module(host, "libvirt_net", {"name": name, "state": "absent"})
    s.check("absent", not r.get("failed") and not defined(host, name), r)

    failed = {k: v for k, v in s.result.items() if v is not True}
    assert not failed, json.dumps(failed, indent=1)
