"""The quick read of nm_bridge and macvtap_link (issue 18), against the real
NetworkManager of each userland the lab has: a no-change run reads NetworkManager over
D-Bus through the devices that matter and makes no nmcli call; what it reads equals what
nmcli prints; taps on the bridge and unrelated profiles cost it nothing; a profile only
its keyfile shows (a port profile for a NIC that is not there, a macvtap profile for
another parent) is still found, and the change is planned from the full read."""

import json
import os
import subprocess

import pytest
from conftest import ROOT, TARGET, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

STATIC = {"ipv4": {"method": "manual", "addresses": ["192.0.2.10/24"]}, "ipv6": {"method": "disabled"}}


def nm(lab, *argv, check=True):
    return lab.exec(["nmcli", *argv], check=check).stdout


def nm_version(lab):
    v = nm(lab, "--version").split()[-1]
    return tuple(int(x) for x in v.split(".")[:2])


@pytest.fixture(scope="module")
def compare_bin():
    subprocess.run(["cargo", "build", "-q", "--release", "--target", TARGET, "-p", "kvmnet_nmdbus",
                    "--example", "nm_compare"], cwd=ROOT, check=True)
    return ROOT / "target" / TARGET / "release" / "examples" / "nm_compare"


@pytest.fixture(autouse=True)
def clean(lab):
    yield
    for line in nm(lab, "-g", "UUID,NAME", "con", "show").splitlines():
        uuid, name = line.split(":", 1)
        if name not in ("lo", "virbr0"):
            nm(lab, "con", "delete", "uuid", uuid, check=False)
    lab.exec(["rm", "-rf", "/var/lib/kvmnet"], check=False)
    for dev in ["br0", "mvq0"] + [f"tapq{i}" for i in range(8)]:
        lab.exec(["ip", "link", "del", dev], check=False)


def dbus_calls(lab, module, args, tmp_path, name):
    """Run the module once with KVMNET_RECORD: its result and the D-Bus calls it made."""
    rec = tmp_path / name
    r = run_module(lab, module, args, env={"KVMNET_RECORD": str(rec)})
    calls = json.loads((rec / "calls.json").read_text())
    return r, [c for c in calls if "bus" in c], [c["argv"][0] for c in calls if "argv" in c]


def test_dbus_reads_profiles_as_nmcli_prints_them(lab, compare_bin):
    """Profiles of every kind the modules meet, with many properties away from their
    defaults: read over D-Bus, they equal nmcli's terse output on every property the
    modules read."""
    newer = nm_version(lab) >= (1, 40)
    extra = ["ipv4.link-local", "2", "ipv6.mtu", "1400"] if newer else []
    cmds = [
        ["con", "add", "type", "bridge", "ifname", "br0", "con-name", "bridge-br0", "bridge.stp", "no",
         "bridge.forward-delay", "4", "bridge.priority", "100", "ipv4.method", "manual",
         "ipv4.addresses", "192.0.2.50/24", "ipv6.method", "disabled"],
        ["con", "add", "type", "bridge", "ifname", "br0", "con-name", "dup-br0", "autoconnect", "no"],
        ["con", "add", "type", "bridge-slave", "ifname", "ens32", "master", "br0", "con-name", "p-ens32"],
        ["con", "add", "type", "ethernet", "ifname", "ens32", "con-name", "uplink", "autoconnect", "no",
         "ipv4.method", "manual", "ipv4.addresses", "192.0.2.5/24,192.0.2.6/24", "ipv4.gateway",
         "192.0.2.1", "ipv4.dns", "1.1.1.1 8.8.8.8", "ipv4.routes",
         "198.51.100.0/24 192.0.2.254 10, 203.0.113.0/24", "ipv4.dns-search", "a.example,b.example",
         "ipv4.dns-options", "rotate,timeout:2", "ipv6.method", "manual", "ipv6.addresses",
         "2001:db8::5/64", "ipv6.dns", "2001:db8::53", "ipv6.ip6-privacy", "2", "ipv6.addr-gen-mode",
         "eui64", "802-3-ethernet.mtu", "1450", "ipv4.route-metric", "50", "ipv4.dhcp-reject-servers",
         "10.0.0.1,10.0.0.2", "ipv4.dhcp-client-id", "mac", "ipv4.dhcp-timeout", "45", "ipv4.may-fail",
         "no", "ipv6.token", "::5", "ipv6.routes", "2001:db8:1::/64 2001:db8::1 20", "ipv4.dhcp-hostname",
         "h1", "ipv6.dhcp-duid", "ll", "ipv4.never-default", "yes", "ipv4.dns-priority", "5",
         "ipv4.route-table", "100", "802-3-ethernet.cloned-mac-address", "52:54:00:AA:BB:CC", *extra],
        ["con", "add", "type", "ethernet", "ifname", "ens32", "con-name", "dhcp", "autoconnect", "no"],
        ["con", "add", "type", "ethernet", "con-name", "generic", "autoconnect", "no"],
        ["con", "add", "type", "macvlan", "ifname", "mvq0", "dev", "ens33", "mode", "private", "tap",
         "yes", "con-name", "mv", "ipv4.method", "disabled", "ipv6.method", "disabled",
         "802-3-ethernet.cloned-mac-address", "52:54:00:12:34:56"],
    ]
    for c in cmds:
        nm(lab, *c)
    mac = lab.exec(["cat", "/sys/class/net/ens33/address"]).stdout.strip()
    nm(lab, "con", "add", "type", "ethernet", "con-name", "bymac", "802-3-ethernet.mac-address", mac,
       "autoconnect", "no")
    nm(lab, "con", "up", "bridge-br0")
    nm(lab, "con", "up", "p-ens32")
    lab.exec(["ip", "tuntap", "add", "dev", "tapq0", "mode", "tap"])
    lab.exec(["ip", "link", "set", "tapq0", "master", "br0", "up"])
    uplink = nm(lab, "-g", "connection.uuid", "con", "show", "uplink").strip()
    # NetworkManager writes the in-memory keyfile of a profile it generated (virbr0's) a
    # moment after it makes the profile: nmcli's reader learns from it that the profile is
    # generated (D-Bus says so at once).
    lab.exec(["sh", "-c", "for i in $(seq 100); do [ -e /run/NetworkManager/system-connections/"
              "virbr0.nmconnection ] && exit 0; sleep 0.1; done; exit 1"])
    p = lab.exec([str(compare_bin), "br0", "ens32", "ens33", "mvq0", "tapq0", "lo", "virbr0",
                  "--uuid", uplink], check=False)
    out = json.loads(p.stdout)
    print(f"NM {out['nm']}: {len(out['profiles'])} profiles, {out['dbus_calls']} D-Bus calls")
    assert p.returncode == 0 and out["differences"] == [], out["differences"]
    ids = {x["id"] for x in out["profiles"]}
    assert {"bridge-br0", "dup-br0", "p-ens32", "uplink", "dhcp", "generic", "mv", "bymac"} <= ids, ids
    tap = [x for x in out["profiles"] if x["type"] == "tun"]
    assert tap and tap[0]["external"] is True, out["profiles"]


def test_a_no_change_bridge_run_makes_no_nmcli_call(lab, tmp_path):
    args = {"name": "br0", "ports": ["ens32"], "stp": False, **STATIC}
    first = run_module(lab, "nm_bridge", args)
    assert first["changed"] and not first["failed"], first
    again = run_module(lab, "nm_bridge", args, count=True)
    assert again["changed"] is False and again["commands"] == [], again
    assert again["_spawned"] == ["ip"], again["_spawned"]
    assert (again["bridge"], again["ports"]) == (first["bridge"], first["ports"])
    check = run_module(lab, "nm_bridge", args, check=True, diff=True, count=True)
    assert check["changed"] is False and check["_spawned"] == ["ip"], check
    # `ports` omitted: the existing ones, as the full read reported them.
    omitted = run_module(lab, "nm_bridge", {"name": "br0", "stp": False}, count=True)
    assert omitted["changed"] is False and omitted["_spawned"] == ["ip"], omitted
    assert omitted["ports"] == first["ports"]
    # Guests' taps in the bridge (NetworkManager makes a profile for each) and unrelated
    # profiles: not asked about.
    _, before, _ = dbus_calls(lab, "nm_bridge", args, tmp_path, "before")
    for i in range(8):
        lab.exec(["ip", "tuntap", "add", "dev", f"tapq{i}", "mode", "tap"])
        lab.exec(["ip", "link", "set", f"tapq{i}", "master", "br0", "up"])
    for i in range(20):
        nm(lab, "con", "add", "type", "ethernet", "ifname", f"nic{i}", "con-name", f"other{i}",
           "autoconnect", "no")
    r, after, procs = dbus_calls(lab, "nm_bridge", args, tmp_path, "after")
    assert r["changed"] is False and procs == ["ip"], (r, procs)
    assert len(after) == len(before), ([c["bus"]["member"] for c in before], [c["bus"]["member"] for c in after])
    # A change is planned from the full read.
    change = run_module(lab, "nm_bridge", {**args, "stp": True, "forward_delay": 2}, count=True)
    assert change["changed"] is True and "nmcli" in change["_spawned"], change


def test_port_profiles_only_a_keyfile_shows_are_found(lab):
    args = {"name": "br0", "ports": ["ens32"], "stp": False, **STATIC}
    first = run_module(lab, "nm_bridge", args)
    assert first["changed"], first
    br = first["bridge"]["uuid"]
    # A port profile of br0 for a NIC the host does not have: no device lists it.
    out = nm(lab, "con", "add", "type", "bridge-slave", "ifname", "ens99", "master", br, "con-name",
             "stale-port")
    stale = out.split("(")[1].split(")")[0]
    r = run_module(lab, "nm_bridge", args, count=True)
    assert r["changed"] is True, r
    assert ["nmcli", "con", "delete", "uuid", stale] in r["commands"], r["commands"]
    assert stale not in nm(lab, "-g", "UUID", "con", "show")
    again = run_module(lab, "nm_bridge", args, count=True)
    assert again["changed"] is False and again["_spawned"] == ["ip"], again


def test_macvtap_profiles_the_device_does_not_list_are_found(lab):
    args = {"name": "mvq0", "link": "ens33", "mode": "bridge", "persistent": True}
    first = run_module(lab, "macvtap_link", args)
    assert first["changed"] and not first["failed"], first
    again = run_module(lab, "macvtap_link", args, count=True)
    assert again["changed"] is False and again["_spawned"] == ["ip"], again
    assert again["link"] == first["link"]
    # Another profile for mvq0, for another parent and mode: mvq0's device does not list it,
    # its keyfile does; the run removes it as the full read always did.
    out = nm(lab, "con", "add", "type", "macvlan", "ifname", "mvq0", "dev", "ens32", "mode", "vepa",
             "tap", "yes", "con-name", "mvq0-other", "autoconnect", "no", "ipv4.method", "disabled",
             "ipv6.method", "disabled")
    other = out.split("(")[1].split(")")[0]
    r = run_module(lab, "macvtap_link", args)
    assert r["changed"] is True, r
    assert other not in nm(lab, "-g", "UUID", "con", "show")
    assert run_module(lab, "macvtap_link", args, count=True)["_spawned"] == ["ip"]
