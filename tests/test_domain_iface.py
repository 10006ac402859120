"""kvmnet.network.domain_iface against a real libvirtd 9.0 / QEMU in a lab host (issue 7).

One lab for the file. Networks are defined with plain virsh (not with libvirt_net);
each test uses its own diskless guests, so tests do not depend on each other's order."""

import json
import os
import re

import pytest
from conftest import run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]

NETWORKS = {
    # bridge-backed, isolated
    "net2": "<network><name>net2</name><bridge name='virbr9' stp='off' delay='0'/>"
            "<ip address='192.168.109.1' netmask='255.255.255.0'/></network>",
    # macvtap-backed, on the lab NIC ens33
    "mvt": "<network><name>mvt</name><forward mode='bridge'><interface dev='ens33'/>"
           "</forward></network>",
}


def iface(mac, kind="network", source="default", extra=""):
    attr = {"network": "network", "bridge": "bridge", "direct": "dev"}[kind]
    src = f"<source {attr}='{source}'{' mode=' + repr('bridge') if kind == 'direct' else ''}/>"
    return (f"<interface type='{kind}'><mac address='{mac}'/>{src}<model type='virtio'/>"
            f"<rom enabled='no'/>{extra}</interface>")


def virsh(lab, *args, check=True):
    return lab.exec([*VIRSH, *args], check=check).stdout


def xml(lab, dom, inactive=False):
    return virsh(lab, "dumpxml", *(["--inactive"] if inactive else []), dom)


def both(lab, dom):
    return xml(lab, dom, inactive=True), xml(lab, dom)


def without_iface(text, mac):
    """The domain XML with the <interface> block of `mac` cut out (the rest must not move)."""
    blocks = re.findall(r"    <interface .*?</interface>\n", text, flags=re.S)
    mine = [b for b in blocks if mac in b]
    assert len(mine) == 1, (mac, text)
    return text.replace(mine[0], "")


def get_iface(text, mac):
    blocks = re.findall(r"<interface .*?</interface>", text, flags=re.S)
    mine = [b for b in blocks if f"'{mac}'" in b]
    return mine[0] if mine else None


def di(lab, args, **kw):
    return run_module(lab, "domain_iface", args, **kw)


def ok(r, changed, restart=None):
    assert not r.get("failed"), r
    assert r["changed"] is changed, r
    if not changed:
        assert r["commands"] == [], r
    if restart is not None:
        assert r["restart_required"] is restart, r
    return r


def link(lab, name):
    p = lab.exec(["ip", "-j", "-d", "link", "show", "dev", name], check=False)
    return json.loads(p.stdout)[0] if p.returncode == 0 else None


def master_of(lab, dev):
    return (link(lab, dev) or {}).get("master")


def restart_guest(lab, dom):
    virsh(lab, "destroy", dom)
    virsh(lab, "start", dom)


@pytest.fixture(scope="module")
def host(lab):
    for name, text in NETWORKS.items():
        lab.exec([*VIRSH, "net-define", "/dev/stdin"], input=text)
        virsh(lab, "net-start", name)
    lab.exec(["ip", "link", "add", "br0", "type", "bridge"])
    lab.exec(["ip", "link", "set", "br0", "up"])
    return lab


def test_network_to_network_to_bridge_live(host):
    lab, mac = host, "52:54:00:10:00:01"
    lab.define_guest("g1", [iface(mac)], start=True)
    before = both(lab, "g1")
    vnet = re.search(r"<target dev='(vnet\d+)'/>", before[1]).group(1)
    assert master_of(lab, vnet) == "virbr0"

    # check mode: honest plan and diff, both definitions untouched
    args = {"domain": "g1", "type": "network", "source": "net2"}
    r = ok(di(lab, args, check=True, diff=True), True, restart=False)
    assert [c[3:] for c in r["commands"]] == [
        ["update-device", "--domain", "g1", "--file", "/dev/stdin", "--config"],
        ["update-device", "--domain", "g1", "--file", "/dev/stdin", "--live"]]
    assert [d["before_header"] for d in r["diff"]] == [
        f"domain g1 interface {mac} (persistent)", f"domain g1 interface {mac} (live)"]
    assert "<source network='net2'/>" in r["diff"][0]["after"]
    assert both(lab, "g1") == before

    # real run: persistent and live, the tap moves bridges, nothing else in the domain moves
    r = ok(di(lab, args), True, restart=False)
    assert r["interface"] == {"mac": mac, "type": "network", "source": "net2", "mode": None,
                              "model": "virtio", "target": vnet, "state": "present"}
    after = both(lab, "g1")
    assert "<source network='net2'/>" in get_iface(after[0], mac)
    assert "network='net2'" in get_iface(after[1], mac)
    assert master_of(lab, vnet) == "virbr9"
    for old, new in zip(before, after):
        assert without_iface(old, mac) == without_iface(new, mac)
    ok(di(lab, args), False, restart=False)

    # network -> bridge: also live (both bridge-backed); MAC given in upper case
    r = ok(di(lab, {"domain": "g1", "mac": mac.upper(), "type": "bridge", "source": "br0"}),
           True, restart=False)
    assert master_of(lab, vnet) == "br0"
    assert "<source bridge='br0'/>" in get_iface(xml(lab, "g1", inactive=True), mac)
    ok(di(lab, {"domain": "g1", "type": "bridge", "source": "br0"}), False, restart=False)
    virsh(lab, "destroy", "g1")


def test_network_to_direct_and_back(host):
    lab, mac = host, "52:54:00:10:00:02"
    lab.define_guest("g2", [iface(mac, extra="<link state='up'/><boot order='1'/>")],
                     start=True)
    to_direct = {"domain": "g2", "type": "direct", "source": "ens32", "mode": "bridge"}

    # live: true must not half-apply: nothing changes
    before = both(lab, "g2")
    r = di(lab, {**to_direct, "live": True})
    assert r["failed"] and r["changed"] is False and r["commands"] == [], r
    assert "cannot move a running guest's interface from a bridge to a macvtap" in r["msg"], r
    assert both(lab, "g2") == before

    # live: auto changes the definition only, and says the guest must restart
    r = ok(di(lab, to_direct), True, restart=True)
    assert len(r["commands"]) == 1 and r["commands"][0][-1] == "--config", r
    assert any("restarted" in w for w in r["warnings"]), r
    pers, live = both(lab, "g2")
    got = get_iface(pers, mac)
    assert "<source dev='ens32' mode='bridge'/>" in got
    for keep in ("<link state='up'/>", "<boot order='1'/>", "<rom enabled='no'/>",
                 "<model type='virtio'/>", "<address type='pci'"):
        assert keep in got, (keep, got)
    assert without_iface(pers, mac) == without_iface(before[0], mac)
    assert live == before[1]
    # pending: no change, still restart_required
    ok(di(lab, to_direct), False, restart=True)

    restart_guest(lab, "g2")
    tap = re.search(r"<target dev='(macvtap\d+)'/>", get_iface(xml(lab, "g2"), mac)).group(1)
    l = link(lab, tap)
    assert l["linkinfo"]["info_kind"] == "macvtap" and l["link"] == "ens32", l
    ok(di(lab, to_direct), False, restart=False)

    # back to a bridge-backed network: again config now, guest at restart
    back = {"domain": "g2", "type": "network", "source": "net2"}
    r = ok(di(lab, back, diff=True), True, restart=True)
    assert "<source network='net2'/>" in r["diff"]["after"], r
    assert "mode=" not in r["diff"]["after"]
    restart_guest(lab, "g2")
    assert "network='net2'" in get_iface(xml(lab, "g2"), mac)
    ok(di(lab, back), False, restart=False)

    # to a macvtap network: not live either; live: false reports the pending change too
    r = ok(di(lab, {"domain": "g2", "type": "network", "source": "mvt", "live": False}),
           True, restart=True)
    restart_guest(lab, "g2")
    live_if = get_iface(xml(lab, "g2"), mac)
    assert "network='mvt'" in live_if and "dev='ens33'" in live_if, live_if
    ok(di(lab, {"domain": "g2", "type": "network", "source": "mvt"}), False, restart=False)

    # model: libvirt refuses it live
    r = ok(di(lab, {"domain": "g2", "model": "e1000"}), True, restart=True)
    assert "<model type='e1000'/>" in get_iface(xml(lab, "g2", inactive=True), mac)
    assert "<model type='virtio'/>" in get_iface(xml(lab, "g2"), mac)
    virsh(lab, "destroy", "g2")


def test_add_and_remove_on_stopped_guest(host):
    lab, first, new = host, "52:54:00:10:00:03", "52:54:00:10:00:33"
    lab.define_guest("g3", [iface(first)])
    before = xml(lab, "g3", inactive=True)
    add = {"domain": "g3", "mac": new, "type": "direct", "source": "ens33", "mode": "vepa",
           "model": "virtio"}
    r = ok(di(lab, add, check=True, diff=True), True, restart=False)
    assert r["diff"]["before"] == ""
    assert xml(lab, "g3", inactive=True) == before
    r = ok(di(lab, add), True, restart=False)
    assert r["commands"][0][3:] == ["attach-device", "--domain", "g3", "--file", "/dev/stdin",
                                    "--config"]
    got = get_iface(xml(lab, "g3", inactive=True), new)
    assert "<source dev='ens33' mode='vepa'/>" in got and "<model type='virtio'/>" in got, got
    ok(di(lab, add), False)
    assert get_iface(xml(lab, "g3", inactive=True), first) == get_iface(before, first)

    gone = {"domain": "g3", "mac": new, "state": "absent"}
    r = ok(di(lab, gone, diff=True), True, restart=False)
    assert r["commands"] == [["virsh", "-c", "qemu:///system", "detach-interface", "--domain", "g3",
                              "--type", "direct", "--mac", new, "--config"]]
    assert r["diff"]["after"] == ""
    assert xml(lab, "g3", inactive=True) == before
    ok(di(lab, gone), False)


def test_add_and_remove_on_running_guest(host):
    lab, first, new = host, "52:54:00:10:00:04", "52:54:00:10:00:44"
    lab.define_guest("g4", [iface(first)], start=True)
    add = {"domain": "g4", "mac": new, "type": "network", "source": "net2", "model": "virtio"}
    r = ok(di(lab, add), True, restart=False)
    assert [c[-1] for c in r["commands"]] == ["--config", "--live"]
    assert r["interface"]["target"].startswith("vnet"), r
    assert master_of(lab, r["interface"]["target"]) == "virbr9"
    pers, live = both(lab, "g4")
    # hot-plugged at the PCI address libvirt gave it in the definition
    slot = re.search(r"slot='(0x[0-9a-f]+)'", get_iface(pers, new)).group(1)
    assert f"slot='{slot}'" in get_iface(live, new)
    ok(di(lab, add), False, restart=False)

    # a diskless guest never acknowledges the unplug: config removed, restart required
    gone = {"domain": "g4", "mac": new, "state": "absent"}
    r = ok(di(lab, gone), True, restart=True)
    assert [c[-1] for c in r["commands"]] == ["--config", "--live"]
    assert get_iface(xml(lab, "g4", inactive=True), new) is None
    ok(di(lab, gone), False, restart=True)
    virsh(lab, "destroy", "g4")
    ok(di(lab, gone), False, restart=False)


def test_hand_edited_guest_is_adopted(host):
    lab = host
    macs = ["52:54:00:10:00:05", "52:54:00:10:00:55", "52:54:00:10:00:56"]
    lab.define_guest("g5", [
        iface(macs[0].upper(), "network", "net2",
              extra="<driver name='qemu'/><mtu size='1400'/>"),
        iface(macs[1], "direct", "ens32"),
        iface(macs[2], "bridge", "br0"),
    ], start=True)
    before = both(lab, "g5")
    for args in ({"mac": macs[0], "type": "network", "source": "net2", "model": "virtio"},
                 {"mac": macs[1], "type": "direct", "source": "ens32", "mode": "bridge"},
                 {"mac_address": macs[2], "type": "bridge", "source": "br0"},
                 {"mac": macs[2]}):
        r = ok(di(lab, {"domain": "g5", **args}, diff=True, count=True), False, restart=False)
        assert r["_spawned"] == ["virsh"], ("a no-change run is one virsh process", r["_spawned"])
        ok(di(lab, {"domain": "g5", **args}, check=True), False, restart=False)
    assert both(lab, "g5") == before
    virsh(lab, "destroy", "g5")


def test_bad_input_fails_clearly_and_changes_nothing(host):
    lab = host
    macs = ["52:54:00:10:00:06", "52:54:00:10:00:66"]
    lab.define_guest("g6", [iface(macs[0]), iface(macs[1], "bridge", "br0")])
    before = both(lab, "g6")

    def bad(args, *needles):
        r = di(lab, args)
        assert r["failed"] is True and r["changed"] is False and r["commands"] == [], r
        for n in needles:
            assert n in r["msg"], (n, r["msg"])
        return r

    bad({"domain": "nosuch", "mac": macs[0]}, "no domain 'nosuch'", "g6")
    bad({"domain": "g6", "type": "network", "source": "net2"},
        "option 'mac'", f"{macs[0]} (network default)", f"{macs[1]} (bridge br0)")
    bad({"domain": "g6", "mac": "52:54:00:10:00:99", "source": "net2"},
        "no interface with MAC 52:54:00:10:00:99", macs[0])
    bad({"domain": "g6", "mac": macs[0], "type": "direct", "source": "ens32"}, "'mode'")
    bad({"domain": "g6", "mac": macs[0], "type": "network", "source": "lan"},
        "network 'lan' is not defined", "default", "mvt", "net2")
    bad({"domain": "g6", "mac": macs[0], "type": "bridge", "source": "ens32"},
        "'ens32' is not a bridge")
    bad({"domain": "g6", "mac": macs[0], "type": "direct", "source": "eth9", "mode": "vepa"},
        "host device 'eth9' does not exist")
    bad({"domain": "g6", "mac": macs[0], "type": "network", "source": "net2", "mode": "vepa"},
        "'mode' applies to type 'direct' only")
    r = bad({"domain": "g6", "uri": "qemu+unix:///system?socket=/run/nosuch.sock"},
            "libvirtd is not reachable")
    assert r["error_kind"] == "missing_dependency"
    # check mode: a network an earlier task would create is a warning, not a failure
    r = ok(di(lab, {"domain": "g6", "mac": macs[0], "type": "network", "source": "lan"},
              check=True), True)
    assert any("network 'lan' is not defined" in w for w in r["warnings"]), r
    assert both(lab, "g6") == before
