"""The shipped aarch64 binaries do what the x86_64 ones do: each module's aarch64 binary runs
under qemu-aarch64-static (called explicitly: binfmt_misc is not mounted here) inside a lab
host, the way Ansible runs a binary module (binary + args file), for a change and for a
no-change run; the x86_64 binary of the same module, run on the same host for the same change
and the same no-change run, gives the same result (generated UUIDs, MACs and
ifindexes aside)."""

import json
import os
import re
import shutil
import tempfile

import pytest

from conftest import MODULES

QEMU = shutil.which("qemu-aarch64-static") or "/usr/bin/qemu-aarch64-static"

# module -> (the change, how to undo it); names of their own so other tests' labs don't matter
CASES = {
    "libvirt_net": ({"name": "a64net", "forward": "bridge", "bridge": "br0"},
                    {"name": "a64net", "state": "absent"}),
    "macvtap_link": ({"name": "a64mv0", "link": "ens33", "mode": "bridge"},
                     {"name": "a64mv0", "state": "absent"}),
    "nm_bridge": ({"name": "a64br", "stp": False, "ipv4": {"method": "manual", "addresses": ["192.0.2.64/24"]},
                   "ipv6": {"method": "disabled"}},
                  {"name": "a64br", "state": "absent"}),
    "domain_iface": ({"domain": "a64vm", "mac": "52:54:00:a6:40:01", "type": "network", "source": "default"},
                     {"domain": "a64vm", "mac": "52:54:00:a6:40:01", "state": "absent"}),
}
# read-only modules: the same options on the same host give the same facts on both
READ_ONLY = {"net_info": {}}
GENERATED = [(re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
             (re.compile(r"(?i)\b(?!52:54:00:a6)[0-9a-f]{2}(:[0-9a-f]{2}){5}\b"), "<mac>"),
             # a link made again gets the next ifindex (and its /dev/tapN)
             (re.compile(r'"ifindex": \d+'), '"ifindex": <n>'), (re.compile(r"/dev/tap\d+"), "/dev/tap<n>")]


@pytest.fixture(scope="module")
def a64lab():
    from kvmlab import Lab

    if not os.access(QEMU, os.X_OK):
        pytest.fail("qemu-aarch64-static is not installed (tests/setup.sh installs qemu-user-static)")
    Lab("ta64").down()
    lab = Lab.up("ta64")
    try:
        lab.define_guest("a64vm")
        yield lab
    finally:
        lab.down()


def run(lab, argv_prefix: list, args: dict) -> dict:
    full = dict(args, _ansible_check_mode=False, _ansible_diff=True, _ansible_no_log=False,
                _ansible_verbosity=0, _ansible_version="2.19.0")
    with tempfile.NamedTemporaryFile("w", dir="/tmp", prefix="kvmnet-a64-", suffix=".json", delete=False) as f:
        json.dump(full, f)
    try:
        p = lab.exec([*argv_prefix, f.name], check=False, timeout=180)
    finally:
        os.unlink(f.name)
    result = json.loads(p.stdout)
    assert p.returncode == (1 if result.get("failed") else 0), (p.stdout, p.stderr)
    return result


def masked(result: dict) -> str:
    text = json.dumps(result, sort_keys=True)
    for pattern, repl in GENERATED:
        text = pattern.sub(repl, text)
    return text


@pytest.mark.parametrize("module", MODULES)
def test_aarch64_binary_gives_the_x86_64_results(collection, a64lab, module):
    bins = collection["path"] / "ansible_collections" / "kvmnet" / "network" / "files" / "bin"
    arm = [QEMU, str(bins / "aarch64" / module)]
    x86 = [str(bins / "x86_64" / module)]
    if module in READ_ONLY:
        a, x = run(a64lab, arm, READ_ONLY[module]), run(a64lab, x86, READ_ONLY[module])
        assert a["changed"] is False and not a.get("failed"), a
        assert a == x, "the facts differ between aarch64 and x86_64"
        return
    change, undo = CASES[module]
    try:
        a_change = run(a64lab, arm, change)
        assert a_change["changed"] is True and not a_change.get("failed"), a_change
        a_same = run(a64lab, arm, change)
        x_same = run(a64lab, x86, change)
        assert a_same["changed"] is False and not a_same.get("failed"), a_same
        assert a_same == x_same, "no-change run differs between aarch64 and x86_64"

        assert run(a64lab, x86, undo)["changed"] is True
        x_change = run(a64lab, x86, change)
        assert masked(a_change) == masked(x_change), "the change differs between aarch64 and x86_64"
    finally:
        run(a64lab, x86, undo)
