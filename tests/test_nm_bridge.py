"""kvmnet.network.nm_bridge against a real NetworkManager in a lab host (issue 4), on every
userland the lab has (KVMNET_LAB_USERLAND: bullseye, NetworkManager 1.30; bookworm, 1.42,
the default; trixie, 1.52).

One lab for the file; every test starts from a host with no profiles but NM's own (lo,
virbr0) and cleans up after itself. Assertions read NetworkManager (nmcli) and the kernel
(ip -j -d link/addr), never only the module's own report."""

import json
import os
import subprocess
import tempfile
import time

import pytest
from conftest import ensure_built, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

STATIC = {"ipv4": {"method": "manual", "addresses": ["192.0.2.10/24"]}, "ipv6": {"method": "disabled"}}
WRITES = ("add", "mod", "modify", "up", "down", "delete", "reapply")
REAPPLY = "org.freedesktop.NetworkManager.Device.Reapply"


def nm_version(lab):
    return tuple(int(x) for x in nm(lab, "--version").split()[-1].split(".")[:2])


def dbus_calls(commands, member):
    """The D-Bus calls of a result's commands with this INTERFACE.MEMBER."""
    return [c for c in commands if c[0] == "dbus" and c[3] == member]


def nm(lab, *argv, check=True):
    return lab.exec(["nmcli", *argv], check=check).stdout


def profiles(lab):
    """{uuid: {id, type, device, state, autoconnect}} of every profile but NM's own."""
    out = {}
    for line in nm(lab, "-g", "UUID,TYPE,DEVICE,STATE,AUTOCONNECT,NAME", "con", "show").splitlines():
        uuid, typ, dev, state, auto, name = line.split(":", 5)
        name = name.replace("\\:", ":").replace("\\\\", "\\")
        if name not in ("lo", "virbr0"):
            out[uuid] = {"id": name, "type": typ, "device": dev, "state": state, "autoconnect": auto}
    return out


def prop(lab, uuid, field):
    return nm(lab, "-g", field, "con", "show", "uuid", uuid).strip()


def link(lab, name):
    p = lab.exec(["ip", "-j", "-d", "addr", "show", "dev", name], check=False)
    return json.loads(p.stdout)[0] if p.returncode == 0 else None


def by_id(lab, ident):
    return [u for u, p in profiles(lab).items() if p["id"] == ident]


@pytest.fixture(autouse=True)
def clean(lab):
    yield
    for uuid in profiles(lab):
        nm(lab, "con", "delete", "uuid", uuid, check=False)
    lab.exec(["rm", "-rf", "/var/lib/kvmnet"], check=False)
    for br in ("br0", "br1", "br2", "--ask"):
        lab.exec(["ip", "link", "del", "dev", br], check=False)


@pytest.fixture
def nmcli_log(lab, monkeypatch, tmp_path):
    """Log every nmcli the module runs (a shim first on PATH; the lab shares /tmp)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "nmcli.log"
    (shim / "nmcli").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec /usr/bin/nmcli "$@"\n')
    (shim / "nmcli").chmod(0o755)
    ensure_built("nm_bridge")
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")

    def calls():
        text = log.read_text() if log.exists() else ""
        log.unlink(missing_ok=True)
        return [line.split() for line in text.splitlines()]
    return calls


def add_uplink(lab, name="uplink", nic="ens32", addr="192.0.2.5/24"):
    out = nm(lab, "con", "add", "type", "ethernet", "ifname", nic, "con-name", name,
             "ipv4.method", "manual", "ipv4.addresses", addr, "ipv6.method", "disabled")
    uuid = out.split("(")[1].split(")")[0]
    nm(lab, "con", "up", "uuid", uuid)
    return uuid


def snapshot(lab):
    """Everything check mode must leave identical: profiles, keyfiles, kernel, memory."""
    keyfiles = lab.exec(["sh", "-c", "cd /etc/NetworkManager/system-connections && sha256sum * | sort"],
                        check=False).stdout
    kernel = []
    for l in json.loads(lab.exec(["ip", "-j", "-d", "addr", "show"]).stdout):
        info = (l.get("linkinfo") or {}).get("info_data") or {}
        kernel.append((l["ifname"], l.get("master"), l.get("mtu"), l.get("address"), info.get("stp_state"),
                       info.get("priority"), sorted(a["local"] for a in l.get("addr_info", []))))
    memory = lab.exec(["sh", "-c", "ls -la /var/lib/kvmnet/nm_bridge/ 2>&1; cat /var/lib/kvmnet/nm_bridge/* 2>&1"],
                      check=False).stdout
    return profiles(lab), keyfiles, sorted(kernel), memory


def test_create_rerun_change_check_absent(lab, nmcli_log):
    uplink = add_uplink(lab)
    args = {"name": "br0", "ports": ["ens32", "ens33"], "stp": False, **STATIC}

    r = run_module(lab, "nm_bridge", args, diff=True)
    assert r["changed"] and not r["failed"], r
    br = r["bridge"]
    assert br["name"] == "br0" and br["conn_name"] == "bridge-br0"
    assert [p["name"] for p in r["ports"]] == ["ens32", "ens33"]
    assert [d["before"] for d in r["diff"] if d["before_header"] != "nm profile uplink"] == ["", "", ""]
    # NetworkManager and the kernel agree with the report.
    ps = profiles(lab)
    assert ps[br["uuid"]]["state"] == "activated"
    for p in r["ports"]:
        assert ps[p["uuid"]]["device"] == p["name"] and ps[p["uuid"]]["state"] == "activated"
        assert prop(lab, p["uuid"], "connection.master") == br["uuid"]
        assert link(lab, p["name"])["master"] == "br0"
    k = link(lab, "br0")
    assert k["linkinfo"]["info_kind"] == "bridge" and k["linkinfo"]["info_data"]["stp_state"] == 0
    assert "192.0.2.10" in [a["local"] for a in k["addr_info"]]
    # The uplink profile was switched off, not deleted.
    assert ps[uplink]["autoconnect"] == "no" and ps[uplink]["state"] == ""
    nmcli_log()

    # Rerun: nothing to do, read over D-Bus (the quick read): no nmcli at all.
    t = time.monotonic()
    r2 = run_module(lab, "nm_bridge", args)
    elapsed = time.monotonic() - t
    assert r2["changed"] is False and r2["commands"] == [], r2
    calls = nmcli_log()
    assert calls == [], calls
    assert not [c for c in calls if set(c) & set(WRITES)], calls
    assert r2["bridge"] == br
    print(f"no-change run: {elapsed:.3f}s wall through the lab, {len(calls)} nmcli calls")

    # STP on the active bridge: profile and kernel follow. br0 carries 192.0.2.10/24, so the
    # change runs inside a checkpoint of br0 and its ports, committed once br0 holds it again.
    r3 = run_module(lab, "nm_bridge", {"name": "br0", "stp": True, "forward_delay": 2})
    assert r3["changed"] and not r3["failed"], r3
    assert r3["checkpoint"]["devices"] == ["br0", "ens32", "ens33"], r3
    assert "committed once the host was verified reachable" in r3["msg"], r3["msg"]
    # Applied to the running bridge: Device.Reapply over D-Bus, or, where NetworkManager
    # refuses to reapply bridge settings (1.30), and only there, the bridge re-activated,
    # then its ports.
    # Of the lab's versions, 1.30 refuses (a refused call is no command of the result).
    reactivated = ["nmcli", "con", "up", "uuid", br["uuid"]] in r3["commands"]
    assert reactivated == (nm_version(lab) < (1, 42)), r3["commands"]
    assert bool(dbus_calls(r3["commands"], REAPPLY)) == (not reactivated), r3["commands"]
    if reactivated:
        for p in r["ports"]:
            assert ["nmcli", "con", "up", "uuid", p["uuid"]] in r3["commands"], r3["commands"]
    assert prop(lab, br["uuid"], "bridge.stp") == "yes"
    info = link(lab, "br0")["linkinfo"]["info_data"]
    assert info["stp_state"] != 0 and info["forward_delay"] == 200
    assert run_module(lab, "nm_bridge", {"name": "br0", "stp": "yes", "forward_delay": "2"})["changed"] is False

    # Check mode: an honest plan, nothing touched.
    before = snapshot(lab)
    r4 = run_module(lab, "nm_bridge", {"name": "br0", "ports": ["ens32"], "stp": False, "mtu": 1400,
                                       "mac": "52:54:00:AB:CD:01", **STATIC}, check=True, diff=True)
    assert r4["changed"] and r4["commands"], r4
    assert any(c[:3] == ["nmcli", "con", "delete"] for c in r4["commands"]), r4["commands"]
    removed = [d for d in r4["diff"] if d["after"] == ""]
    assert [d["before_header"] for d in removed] == ["nm profile bridge-slave-ens33"]
    assert snapshot(lab) == before

    # Absent: profiles gone, the bridge gone, the uplink profile back as it was.
    r5 = run_module(lab, "nm_bridge", {"name": "br0", "state": "absent"}, diff=True)
    assert r5["changed"], r5
    assert r5["restored"] == [{"name": "ens32", "uuid": uplink, "conn_name": "uplink"}]
    assert all(d["after"] == "" for d in r5["diff"] if d["before_header"] != "nm profile uplink")
    ps = profiles(lab)
    assert set(ps) == {uplink}
    assert ps[uplink]["autoconnect"] == "yes" and ps[uplink]["state"] == "activated"
    assert link(lab, "br0") is None
    assert "192.0.2.5" in [a["local"] for a in link(lab, "ens32")["addr_info"]]
    assert lab.exec(["test", "-e", "/var/lib/kvmnet/nm_bridge/br0.json"], check=False).returncode == 1
    assert run_module(lab, "nm_bridge", {"name": "br0", "state": "absent"})["changed"] is False


def test_adopts_the_tutorials_profiles_and_repairs_a_name_master(lab):
    add_uplink(lab, name="ens32", addr="192.0.2.5/24")
    # Method 1 of the tutorial, verbatim.
    nm(lab, "con", "add", "type", "bridge", "ifname", "br0")
    nm(lab, "con", "add", "type", "bridge-slave", "ifname", "ens32", "master", "bridge-br0")
    nm(lab, "con", "delete", "ens32")
    made = profiles(lab)
    assert sorted(p["id"] for p in made.values()) == ["bridge-br0", "bridge-slave-ens32"]

    args = {"name": "br0", "ports": ["ens32"], "stp": False, **STATIC}
    r = run_module(lab, "nm_bridge", args)
    assert r["changed"], r
    assert not [c for c in r["commands"] if c[:3] == ["nmcli", "con", "add"]], r["commands"]
    assert set(profiles(lab)) == set(made)
    bridge = by_id(lab, "bridge-br0")[0]
    assert r["bridge"]["uuid"] == bridge
    assert link(lab, "ens32")["master"] == "br0"
    assert run_module(lab, "nm_bridge", args)["changed"] is False

    # What a peer module writes: the master as a profile name, which never activates.
    port = by_id(lab, "bridge-slave-ens32")[0]
    nm(lab, "con", "mod", "uuid", port, "connection.master", "bridge-br0")
    assert prop(lab, port, "connection.master") == "bridge-br0"
    r = run_module(lab, "nm_bridge", args)
    assert r["changed"] and "repair" in r["msg"].lower(), r
    assert prop(lab, port, "connection.master") == bridge
    assert profiles(lab)[port]["state"] == "activated"
    assert set(profiles(lab)) == set(made)
    assert run_module(lab, "nm_bridge", args)["changed"] is False


def test_names_with_colon_and_backslash(lab):
    name = "lab:br\\1"
    old = add_uplink(lab, name="old:ens33\\x", nic="ens33", addr="198.18.0.5/24")
    args = {"name": "br1", "conn_name": name, "ports": "ens33", "port_profiles": "delete",
            "ipv4": {"method": "manual", "addresses": ["198.18.0.5/24"], "gateway": "198.18.0.1",
                     "dns": ["198.18.0.53"]},
            "ipv6": {"method": "disabled"}, "stp": "off"}
    r = run_module(lab, "nm_bridge", args)
    assert r["changed"] and r["bridge"]["conn_name"] == name, r
    ps = profiles(lab)
    assert old not in ps  # port_profiles: delete, as the tutorial did
    assert [u for u, p in ps.items() if p["id"] == name] == [r["bridge"]["uuid"]]
    assert prop(lab, r["bridge"]["uuid"], "ipv4.gateway") == "198.18.0.1"
    r2 = run_module(lab, "nm_bridge", args)
    assert r2["changed"] is False, r2
    assert len(by_id(lab, name)) == 1
    r3 = run_module(lab, "nm_bridge", {"name": "br1", "conn_name": name, "state": "absent"})
    assert r3["changed"] and profiles(lab) == {}


def test_keep_warns_when_the_port_is_held(lab):
    held = add_uplink(lab, name="held", nic="ens33", addr="198.18.0.5/24")
    r = run_module(lab, "nm_bridge", {"name": "br2", "ports": ["ens33"], "port_profiles": "keep",
                                      "stp": False, **STATIC})
    assert not r["failed"], r
    assert any("held by profile 'held'" in w for w in r.get("warnings", [])), r
    assert r["ports"][0]["active"] is False
    ps = profiles(lab)
    assert ps[held]["state"] == "activated" and ps[held]["autoconnect"] == "yes"
    assert link(lab, "ens33").get("master") is None


def test_two_runs_at_once_make_one_set_of_profiles(lab):
    binary = str(ensure_built("nm_bridge"))
    args = {"name": "br2", "ports": ["ens33"], "stp": False, **STATIC,
            "_ansible_check_mode": False, "_ansible_diff": False}
    procs, files = [], []
    for _ in range(2):
        f = tempfile.NamedTemporaryFile("w", dir="/tmp", prefix="kvmnet-args-", suffix=".json", delete=False)
        json.dump(args, f)
        f.close()
        files.append(f.name)
    for f in files:
        procs.append(subprocess.Popen(lab.exec_argv([binary, f]), stdout=subprocess.PIPE, text=True))
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    for f in files:
        os.unlink(f)
    assert not [r for r in results if r["failed"]], results
    assert sorted(r["changed"] for r in results) == [False, True], results
    ps = profiles(lab)
    assert sorted(p["id"] for p in ps.values()) == ["bridge-br2", "bridge-slave-ens33"], ps
    assert link(lab, "ens33")["master"] == "br2"


def test_bad_input_changes_nothing(lab):
    before = snapshot(lab)
    cases = [
        ({"name": "br0", "ports": ["ens32", "eth7"]}, "eth7 does not exist on this host (NICs that do: ens32, ens33)"),
        ({"name": "br0", "ports": ["br0"]}, "option 'ports': 'br0' is the bridge itself"),
        ({"name": "a-very-long-bridge"}, "option 'name': 'a-very-long-bridge' is 18 bytes long"),
        ({"name": "br0", "ipv4": {"method": "manual", "addresses": ["192.0.2.300/24"]}}, "option 'ipv4.addresses[0]'"),
        ({"name": "br0", "ipv4": {"gateway": "192.0.2.1"}}, "ipv4.gateway"),
    ]
    for args, want in cases:
        r = run_module(lab, "nm_bridge", args)
        assert r["failed"] and want in r["msg"], (args, r["msg"])
        assert r["commands"] == []
    # A port with an address the task does not decide: refused before any change.
    add_uplink(lab)
    before = snapshot(lab)
    r = run_module(lab, "nm_bridge", {"name": "br0", "ports": ["ens32"], "stp": False})
    assert r["failed"] and "ens32 carries 192.0.2.5/24" in r["msg"] and "ipv4" in r["msg"], r
    assert snapshot(lab) == before


def test_a_running_guest_on_the_bridge_stays_on_it(lab):
    """A started guest's tap on br0 gets a profile NetworkManager generates (type tun,
    master br0). It is not a port this module manages: reruns change nothing and the
    guest stays on the bridge; absent leaves the generated profile to NetworkManager."""
    args = {"name": "br0", "ports": ["ens32"], "stp": False, **STATIC}
    assert run_module(lab, "nm_bridge", args)["changed"] is True
    lab.define_guest("tap1", interfaces=[
        "<interface type='bridge'><mac address='52:54:00:aa:01:01'/><source bridge='br0'/>"
        "<model type='virtio'/><rom enabled='no'/></interface>"], start=True)
    try:
        deadline = time.monotonic() + 10
        while not [p for p in profiles(lab).values() if p["type"] == "tun"]:
            assert time.monotonic() < deadline, "NetworkManager made no profile for the tap"
            time.sleep(0.2)
        vnet = [p["device"] for p in profiles(lab).values() if p["type"] == "tun"][0]
        for _ in range(2):
            r = run_module(lab, "nm_bridge", args)
            assert r["changed"] is False and r["commands"] == [], r
            assert [p["name"] for p in r["ports"]] == ["ens32"], r
            assert link(lab, vnet)["master"] == "br0"
            assert "UP" in link(lab, vnet)["flags"]
        r = run_module(lab, "nm_bridge", {"name": "br0", "state": "absent"}, check=True)
        assert not [c for c in r["commands"] if c[:3] == ["nmcli", "con", "delete"]
                    and any(u in c for u, p in profiles(lab).items() if p["type"] == "tun")], r
    finally:
        lab.exec(["virsh", "-q", "-c", "qemu:///system", "destroy", "tap1"], check=False)
        lab.exec(["virsh", "-q", "-c", "qemu:///system", "undefine", "tap1"], check=False)


def test_a_bridge_named_like_an_option(lab):
    """The kernel and NetworkManager take `--ask` as an interface name; nmcli's `dev reapply
    --ask` would read it as its --ask option (and wait for a name on stdin). Every name
    reaches the tools as data: profiles by UUID, the device over D-Bus by its name."""
    name = "--ask"
    args = {"name": name, "ports": ["ens33"], "stp": False, **STATIC}
    r = run_module(lab, "nm_bridge", args)
    assert r["changed"] and not r["failed"], r
    br = r["bridge"]
    assert br["conn_name"] == "bridge---ask" and profiles(lab)[br["uuid"]]["device"] == name
    assert link(lab, name)["linkinfo"]["info_kind"] == "bridge"
    assert link(lab, "ens33")["master"] == name
    assert run_module(lab, "nm_bridge", args)["changed"] is False

    # A setting the running bridge takes: reapplied (or, on 1.30, the bridge re-activated by
    # UUID), inside a checkpoint since it carries 192.0.2.10/24.
    r = run_module(lab, "nm_bridge", {"name": name, "priority": 4096})
    assert r["changed"] and not r["failed"], r
    assert r["checkpoint"]["devices"] == [name, "ens33"], r
    reapplied = dbus_calls(r["commands"], REAPPLY)
    assert bool(reapplied) == (nm_version(lab) >= (1, 42)), r["commands"]
    assert not [c for c in r["commands"] if c[0] != "dbus" and name in c], r["commands"]
    assert link(lab, name)["linkinfo"]["info_data"]["priority"] == 4096
    assert prop(lab, br["uuid"], "bridge.priority") == "4096"
    assert run_module(lab, "nm_bridge", {"name": name, "priority": 4096})["changed"] is False

    r = run_module(lab, "nm_bridge", {"name": name, "state": "absent"})
    assert r["changed"] and not r["failed"], r
    assert profiles(lab) == {} and link(lab, name) is None


def test_absent_gives_every_port_its_profile_back(lab):
    """Two ports whose own profiles held addresses (switched off when they joined br0) get
    them back with state absent, inside a checkpoint that commits only once each holds its
    address again."""
    uplink = add_uplink(lab, name="uplink", nic="ens32", addr="192.0.2.5/24")
    side = add_uplink(lab, name="side", nic="ens33", addr="198.18.0.5/24")
    args = {"name": "br0", "ports": ["ens32", "ens33"], "stp": False, **STATIC}
    r = run_module(lab, "nm_bridge", args)
    assert r["changed"] and not r["failed"], r
    assert r["checkpoint"]["devices"] == ["ens32", "ens33"], r
    assert link(lab, "ens32")["master"] == "br0" and link(lab, "ens33")["master"] == "br0"

    r = run_module(lab, "nm_bridge", {"name": "br0", "state": "absent"})
    assert r["changed"] and not r["failed"], r
    assert r["checkpoint"]["devices"] == ["br0", "ens32", "ens33"], r
    assert "committed once the host was verified reachable" in r["msg"], r["msg"]
    assert sorted(x["conn_name"] for x in r["restored"]) == ["side", "uplink"]
    ps = profiles(lab)
    assert set(ps) == {uplink, side}
    assert ps[uplink]["state"] == ps[side]["state"] == "activated"
    for nic, addr in [("ens32", "192.0.2.5"), ("ens33", "198.18.0.5")]:
        assert addr in [a["local"] for a in link(lab, nic)["addr_info"]], nic
    assert link(lab, "br0") is None
