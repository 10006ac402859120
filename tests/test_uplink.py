"""Moving a remote host's only uplink into a bridge over that same link (issue 15).

One lab host with its LAN (`--ssh --dhcp`): ens32's far side holds the DHCP server and
gateway 198.51.100.1, and Ansible reaches the host there, over ens32 itself, through the
lab's wire-ssh, as a fleet's controller does (no management NIC in the way). Every test
starts from a host whose only profile of its own is the uplink on ens32, and a watcher in
the wire namespace (tests/lanwatch.py: a TCP connect to the host every 0.1 s) records how
long the host did not answer; the windows are printed (`-s` shows them), not
asserted: speed belongs to bench/. Assertions read NetworkManager and the kernel.

Runs on every userland (KVMNET_LAB_USERLAND: bullseye, bookworm, trixie)."""

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import ROOT, ensure_built, run_module
from lanwatch import Watch

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

PLAYBOOK = ROOT / "playbooks" / "bridge.yml"
GATEWAY = "198.51.100.1"
STATIC = "198.51.100.50"


@pytest.fixture(scope="module")
def lab(binaries):
    """One lab host with ssh and a DHCP LAN for the file, torn down even on failure."""
    from kvmlab import Lab

    Lab("tuplink").down()
    lab = Lab.up("tuplink", ssh=True, dhcp=True)
    try:
        yield lab
    finally:
        lab.down()


def nm(lab, *argv, check=True):
    return lab.exec(["nmcli", *argv], check=check).stdout


def profiles(lab):
    """{name: (device, autoconnect)} of every profile but NetworkManager's own."""
    out = {}
    for line in nm(lab, "-g", "NAME,DEVICE,AUTOCONNECT,TYPE", "con", "show").splitlines():
        name, dev, auto, typ = line.rsplit(":", 3)
        if name not in ("lo", "virbr0") and typ != "tun":
            out[name] = (dev, auto)
    return out


def prop(lab, name, field):
    return nm(lab, "-g", field, "con", "show", "id", name).strip()


def link(lab, name):
    p = lab.exec(["ip", "-j", "-d", "addr", "show", "dev", name], check=False)
    return json.loads(p.stdout)[0] if p.returncode == 0 else None


def addresses(lab, dev):
    return [a["local"] for a in (link(lab, dev) or {}).get("addr_info", [])
            if a["family"] == "inet" and a["scope"] == "global"]


def default_route_dev(lab):
    routes = json.loads(lab.exec(["ip", "-j", "route", "show", "default"]).stdout)
    return routes[0]["dev"] if routes else None


@pytest.fixture(autouse=True)
def clean(lab):
    """Before each test: no profile of ours, no bridge, no memory or marker; after it, no
    guest."""
    for name in profiles(lab):
        nm(lab, "con", "delete", "id", name, check=False)
    lab.exec(["rm", "-rf", "/var/lib/kvmnet", "/run/kvmnet"], check=False)
    lab.exec(["ip", "link", "del", "br0"], check=False)
    yield
    for g in ("tap1",):
        lab.exec(["virsh", "-q", "-c", "qemu:///system", "destroy", g], check=False)
        lab.exec(["virsh", "-q", "-c", "qemu:///system", "undefine", g], check=False)


def wait_for(what, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.2)


def dhcp_uplink(lab):
    nm(lab, "con", "add", "type", "ethernet", "ifname", "ens32", "con-name", "ens32",
       "ipv4.method", "auto")
    nm(lab, "con", "up", "id", "ens32")
    return wait_for("a DHCP lease on ens32", lambda: addresses(lab, "ens32") and lab.lan_address())


def static_uplink(lab):
    nm(lab, "con", "add", "type", "ethernet", "ifname", "ens32", "con-name", "ens32",
       "ipv4.method", "manual", "ipv4.addresses", f"{STATIC}/24", "ipv4.gateway", GATEWAY,
       "ipv4.dns", GATEWAY, "ipv6.method", "disabled")
    nm(lab, "con", "up", "id", "ens32")
    return wait_for("ens32's address", lambda: lab.lan_address())


def report(label, watch):
    r = watch.result
    print(f"\n[{label}] host at {r['address']} unreachable from its LAN: longest "
          f"{r['longest_s']} s, windows {r['windows']} ({r['failures']}/{r['attempts']} connects failed)")
    assert not r["ended_down"], f"{label}: the host did not answer again: {r}"


def playbook(lab, collection, tmp_path, *extra, check=False, play=PLAYBOOK):
    """ansible-playbook over the LAN (the inventory's hosts at their LAN addresses, through
    the lab's wire-ssh). Returns (rc, output, changed count of the recap)."""
    from kvmlab import write_inventory

    inv = tmp_path / "hosts.ini"
    write_inventory([lab], str(inv), lan=True)
    argv = ["ansible-playbook", "-v", "-i", str(inv), str(play), "-e", "kvmnet_bridge_hosts=kvmnet_labs"]
    for e in extra:
        argv += ["-e", json.dumps(e)]
    if check:
        argv += ["--check", "--diff"]
    p = subprocess.run(argv, cwd=ROOT, env=collection["env"], capture_output=True, text=True,
                       timeout=600)
    out = p.stdout + p.stderr
    recap = out.rsplit("PLAY RECAP", 1)[-1]
    changed = int(recap.split("changed=", 1)[1].split()[0]) if "changed=" in recap else -1
    return p.returncode, out, changed


def absent_play(tmp_path):
    play = tmp_path / "absent.yml"
    play.write_text("""---
- name: Give the uplink back
  hosts: kvmnet_labs
  gather_facts: false
  tasks:
    - name: No bridge br0
      kvmnet.network.nm_bridge:
        name: br0
        state: absent
""")
    return play


def test_dhcp_uplink_moves_into_br0_and_back_over_that_link(lab, collection, tmp_path):
    addr = dhcp_uplink(lab)
    mac = link(lab, "ens32")["address"]
    # Check mode first: the takeover plan, inside a checkpoint; nothing changes.
    rc, out, changed = playbook(lab, collection, tmp_path, check=True)
    assert rc == 0 and changed >= 1, out
    assert "would take over ens32's IP configuration" in out and "NetworkManager checkpoint" in out, out
    assert link(lab, "br0") is None and profiles(lab) == {"ens32": ("ens32", "yes")}
    assert addresses(lab, "ens32") == [addr]
    with Watch(lab, addr) as w:
        rc, out, changed = playbook(lab, collection, tmp_path)
    report("DHCP uplink: bridge.yml", w)
    assert rc == 0 and changed >= 1, out
    # br0 holds the same lease, with ens32's MAC address; ens32 is its port.
    assert addresses(lab, "br0") == [addr] and addresses(lab, "ens32") == []
    assert link(lab, "br0")["address"] == mac
    assert link(lab, "ens32")["master"] == "br0"
    assert default_route_dev(lab) == "br0"
    assert prop(lab, "bridge-br0", "ipv4.method") == "auto"
    assert profiles(lab)["ens32"] == ("", "no")
    assert lab.exec(["test", "-e", "/run/kvmnet/nm_bridge/br0.checkpoint"], check=False).returncode == 1

    rc, out, changed = playbook(lab, collection, tmp_path)
    assert rc == 0 and changed == 0, out
    rc, out, changed = playbook(lab, collection, tmp_path, check=True)
    assert rc == 0 and changed == 0, out

    with Watch(lab, addr) as w:
        rc, out, changed = playbook(lab, collection, tmp_path, play=absent_play(tmp_path))
    report("DHCP uplink: state absent", w)
    assert rc == 0 and changed == 1, out
    assert link(lab, "br0") is None
    assert addresses(lab, "ens32") == [addr] and default_route_dev(lab) == "ens32"
    assert profiles(lab) == {"ens32": ("ens32", "yes")}


def test_static_uplink_settings_move_to_br0_and_back(lab, collection, tmp_path):
    """A static uplink whose own profile the takeover deletes (port_profiles: delete, as the
    tutorial does): br0 gets the static settings; state absent makes ens32 a plain profile
    carrying them."""
    addr = static_uplink(lab)
    assert addr == STATIC
    with Watch(lab, addr) as w:
        rc, out, changed = playbook(lab, collection, tmp_path, {"kvmnet_bridge_port_profiles": "delete"})
    report("static uplink: bridge.yml", w)
    assert rc == 0 and changed >= 1, out
    assert addresses(lab, "br0") == [STATIC] and default_route_dev(lab) == "br0"
    for field, want in [("ipv4.method", "manual"), ("ipv4.addresses", f"{STATIC}/24"),
                        ("ipv4.gateway", GATEWAY), ("ipv4.dns", GATEWAY), ("ipv6.method", "disabled")]:
        assert prop(lab, "bridge-br0", field) == want, field
    assert "ens32" not in profiles(lab)

    rc, out, changed = playbook(lab, collection, tmp_path, {"kvmnet_bridge_port_profiles": "delete"})
    assert rc == 0 and changed == 0, out
    rc, out, changed = playbook(lab, collection, tmp_path, {"kvmnet_bridge_port_profiles": "delete"},
                                check=True)
    assert rc == 0 and changed == 0, out

    with Watch(lab, addr) as w:
        rc, out, changed = playbook(lab, collection, tmp_path, play=absent_play(tmp_path))
    report("static uplink: state absent", w)
    assert rc == 0 and changed == 1, out
    assert profiles(lab) == {"ens32": ("ens32", "yes")}
    assert addresses(lab, "ens32") == [STATIC] and default_route_dev(lab) == "ens32"
    for field, want in [("ipv4.method", "manual"), ("ipv4.addresses", f"{STATIC}/24"),
                        ("ipv4.gateway", GATEWAY), ("ipv4.dns", GATEWAY)]:
        assert prop(lab, "ens32", field) == want, field


def test_with_stp_on_verification_waits_for_the_new_bridge_to_forward(lab):
    """NetworkManager's default for a new bridge is STP on: its port forwards only after
    twice the forward delay (~30 s), and only then does br0 get its lease back. The default
    rollback_timeout (60 s: verification for 45 s) allows for it: committed, not rolled back."""
    addr = dhcp_uplink(lab)
    with Watch(lab, addr) as w:
        r = run_module(lab, "nm_bridge", {"name": "br0", "ports": ["ens32"], "inherit": True})
    report("STP on (NetworkManager's default)", w)
    assert r["changed"] and not r["failed"], r
    assert "committed once the host was verified reachable" in r["msg"], r["msg"]
    assert prop(lab, "bridge-br0", "bridge.stp") == "yes"
    assert addresses(lab, "br0") == [addr] and default_route_dev(lab) == "br0"


def test_impossible_target_is_rolled_back(lab, collection, tmp_path):
    """What lost the host before: a static address on another subnet and a gateway that never
    answers. The task fails saying it rolled back, over the very link it had cut."""
    addr = dhcp_uplink(lab)
    bad = {"kvmnet_bridge_ipv4": {"method": "manual", "addresses": ["172.27.99.5/24"],
                                  "gateway": "172.27.99.1"},
           "kvmnet_bridge_rollback_timeout": 15}
    with Watch(lab, addr) as w:
        rc, out, changed = playbook(lab, collection, tmp_path, bad)
    report("impossible target", w)
    assert rc != 0, out
    assert "the gateway 172.27.99.1 does not answer on br0" in out and "rolled back" in out, out
    assert "changed=0" in out.rsplit("PLAY RECAP", 1)[-1], out
    assert link(lab, "br0") is None and "bridge-br0" not in profiles(lab)
    assert addresses(lab, "ens32") == [addr] and default_route_dev(lab) == "ens32"
    assert profiles(lab) == {"ens32": ("ens32", "yes")}


def module_pids(args_path):
    out = subprocess.run(["pgrep", "-f", "-x", f"{ensure_built('nm_bridge')} {args_path}"],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_killed_before_commit_networkmanager_rolls_back_by_itself(lab, tmp_path):
    """The module run directly in the lab and killed (SIGKILL, by its own PID) once ens32 is
    in br0, while it still waits to verify (STP on: the bridge forwards only after ~30 s):
    nothing commits, and NetworkManager restores the old state itself after
    rollback_timeout. The run right after says a rollback is pending; once it happened, a
    run puts back the memory file the killed run had written."""
    addr = dhcp_uplink(lab)
    args = {"name": "br0", "ports": ["ens32"], "inherit": True, "rollback_timeout": 15,
            "_ansible_check_mode": False}
    path = tmp_path / "args.json"
    path.write_text(json.dumps(args))
    binary = str(ensure_built("nm_bridge"))
    with Watch(lab, addr) as w:
        proc = subprocess.Popen(lab.exec_argv([binary, str(path)]), stdout=subprocess.PIPE, text=True)
        wait_for("ens32 in br0", lambda: (link(lab, "ens32") or {}).get("master") == "br0", 30)
        pids = module_pids(path)
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        proc.communicate(timeout=30)
        r = run_module(lab, "nm_bridge", {k: v for k, v in args.items() if not k.startswith("_")})
        assert r["failed"] and r["error_kind"] == "busy", r
        assert "is pending on ens32" in r["msg"] and "rolls it back" in r["msg"], r["msg"]
        assert r["commands"] == []
        wait_for("the old state back", lambda: addresses(lab, "ens32") == [addr], 60)
    report("killed before commit", w)
    assert link(lab, "br0") is None
    assert profiles(lab) == {"ens32": ("ens32", "yes")}
    # NetworkManager's rollback does not touch the memory file the killed run wrote: it is
    # still there, and the next run puts it back as it was before that run (there was none).
    assert lab.exec(["test", "-e", "/var/lib/kvmnet/nm_bridge/br0.json"], check=False).returncode == 0
    r = run_module(lab, "nm_bridge", {"name": "br0", "state": "absent"})
    assert r["changed"] and "put /var/lib/kvmnet/nm_bridge/br0.json back" in r["msg"].lower(), r
    for f in ("/var/lib/kvmnet/nm_bridge/br0.json", "/run/kvmnet/nm_bridge/br0.checkpoint"):
        assert lab.exec(["test", "-e", f], check=False).returncode == 1, f
    assert run_module(lab, "nm_bridge", {"name": "br0", "state": "absent"})["changed"] is False


def nm_older_than(lab, version):
    return tuple(int(x) for x in nm(lab, "--version").split()[-1].split(".")[:2]) < version


def guest_on_br0(lab):
    """A running guest with its tap in br0; returns the taps in br0 (ens32 aside)."""
    lab.define_guest("tap1", interfaces=[
        "<interface type='bridge'><mac address='52:54:00:aa:01:01'/><source bridge='br0'/>"
        "<model type='virtio'/><rom enabled='no'/></interface>"], start=True)
    return wait_for("the guest's tap in br0", lambda: [
        l["ifname"] for l in json.loads(lab.exec(["ip", "-j", "link", "show", "master", "br0"]).stdout)
        if l["ifname"] != "ens32"])


def test_stp_turned_on_over_the_uplink_runs_inside_a_checkpoint(lab):
    """br0 carries the host's lease; turning STP on is a change the running bridge takes, so
    it runs inside a checkpoint of br0 and ens32. NetworkManager 1.42 and 1.52 reapply it
    (the kernel keeps the forwarding port forwarding); 1.30 refuses, and the bridge and its
    port are re-activated: the port rejoins listening and forwards only after ~30 s, which
    verification waits for (the gateway answering) before it commits."""
    addr = dhcp_uplink(lab)
    r = run_module(lab, "nm_bridge", {"name": "br0", "ports": ["ens32"], "stp": False, "inherit": True})
    assert r["changed"] and not r["failed"], r
    wait_for("br0's lease", lambda: addresses(lab, "br0") == [addr])
    with Watch(lab, addr) as w:
        r = run_module(lab, "nm_bridge", {"name": "br0", "stp": True})
    report("STP turned on over the uplink", w)
    assert r["changed"] and not r["failed"], r
    assert r["checkpoint"]["devices"] == ["br0", "ens32"], r
    assert "committed once the host was verified reachable" in r["msg"], r["msg"]
    reactivated = [c for c in r["commands"] if c[:3] == ["nmcli", "con", "up"]]
    assert bool(reactivated) == nm_older_than(lab, (1, 42)), r["commands"]
    assert link(lab, "br0")["linkinfo"]["info_data"]["stp_state"] != 0
    assert addresses(lab, "br0") == [addr] and default_route_dev(lab) == "br0"
    assert lab.exec(["test", "-e", "/run/kvmnet/nm_bridge/br0.checkpoint"], check=False).returncode == 1


def test_killed_with_a_guest_on_the_bridge_the_next_run_puts_it_back(lab, tmp_path):
    """A run killed inside its checkpoint while a guest runs on br0: NetworkManager rolls
    back by itself; before 1.38 that detaches the guest's tap from br0. The killed run's
    marker lists the tap: the next run puts it back into br0 and removes the marker (which,
    this run having rewritten no memory file, holds nothing else to put back)."""
    addr = dhcp_uplink(lab)
    r = run_module(lab, "nm_bridge", {"name": "br0", "ports": ["ens32"], "stp": False, "inherit": True})
    assert r["changed"] and not r["failed"], r
    taps = guest_on_br0(lab)
    args = {"name": "br0", "rollback_timeout": 15, "_ansible_check_mode": False,
            "ipv4": {"method": "manual", "addresses": ["172.27.99.5/24"], "gateway": "172.27.99.1"}}
    path = tmp_path / "args.json"
    path.write_text(json.dumps(args))
    binary = str(ensure_built("nm_bridge"))
    marker = "/run/kvmnet/nm_bridge/br0.checkpoint"
    with Watch(lab, addr) as w:
        proc = subprocess.Popen(lab.exec_argv([binary, str(path)]), stdout=subprocess.PIPE, text=True)
        wait_for("the change in br0", lambda: "172.27.99.5" in addresses(lab, "br0"), 30)
        pids = module_pids(path)
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        proc.communicate(timeout=30)
        noted = json.loads(lab.exec(["cat", marker]).stdout)
        assert noted["taps"] == taps and "memory_before" not in noted, noted
        wait_for("NetworkManager's own rollback", lambda: addresses(lab, "br0") == [addr], 60)
    report("killed with a guest on br0", w)
    old = nm_older_than(lab, (1, 38))
    detached = [t for t in taps if (link(lab, t) or {}).get("master") != "br0"]
    assert bool(detached) == old, (taps, detached)
    r = run_module(lab, "nm_bridge", {"name": "br0"})
    assert r["changed"] and not r["failed"], r
    for t in taps:
        assert link(lab, t)["master"] == "br0", t
    reattached = [c for c in r["commands"] if c[:3] == ["ip", "link", "set"]]
    assert reattached == [["ip", "link", "set", "dev", t, "master", "br0"] for t in detached], r["commands"]
    assert ["rm", "-f", marker] in r["commands"], r["commands"]
    assert lab.exec(["test", "-e", marker], check=False).returncode == 1
    assert run_module(lab, "nm_bridge", {"name": "br0"})["changed"] is False


def test_a_rollback_keeps_running_guests_on_the_bridge(lab):
    """NetworkManager before 1.38 detaches the ports it did not make (guests' taps) from a
    bridge it rolls back; the module puts them back. From 1.38 on NetworkManager keeps them
    and the module has nothing to do."""
    addr = dhcp_uplink(lab)
    r = run_module(lab, "nm_bridge", {"name": "br0", "ports": ["ens32"], "stp": False, "inherit": True})
    assert r["changed"] and not r["failed"], r
    taps = guest_on_br0(lab)
    r = run_module(lab, "nm_bridge", {"name": "br0", "rollback_timeout": 10,
                                      "ipv4": {"method": "manual", "addresses": ["172.27.99.5/24"],
                                               "gateway": "172.27.99.1"}})
    assert r["failed"] and "rolled back" in r["msg"] and r["changed"] is False, r
    assert addresses(lab, "br0") == [addr]
    for t in taps:
        assert link(lab, t)["master"] == "br0", t
    old = nm_older_than(lab, (1, 38))
    reattached = [c for c in r["commands"] if c[:3] == ["ip", "link", "set"]]
    assert bool(reattached) == old, r["commands"]
