"""kvmnet.network.libvirt_net against a real libvirtd in a lab host (issue 6), of the
userland KVMNET_LAB_USERLAND selects (libvirt 7.0, 9.0 or 11.3).

One lab for the file. Every test names its own networks, so they share the lab without
depending on each other's order."""

import os

import pytest
from conftest import run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]

HOST_BRIDGE_XML = """<network>
  <name>host-bridge</name>
  <forward mode="bridge"/>
  <bridge name="br0"/>
</network>
"""

VTAP_XML = """<network>
  <name>vtap</name>
  <forward mode="private">
    <interface dev="macvtap0"/>
  </forward>
</network>
"""


def virsh(lab, *args, check=True, input=None):
    return lab.exec([*VIRSH, *args], check=check, input=input).stdout


def dumpxml(lab, name, inactive=False):
    return virsh(lab, "net-dumpxml", *(["--inactive"] if inactive else []), name)


def info(lab, name):
    out = virsh(lab, "net-info", name, check=False)
    return {k.strip(): v.strip() for k, v in
            (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def exists(lab, name):
    return name in virsh(lab, "net-list", "--all", "--name").split()


def net(lab, args, **kw):
    return run_module(lab, "libvirt_net", args, **kw)


def ok_changed(r, changed):
    assert not r.get("failed"), r
    assert r["changed"] is changed, r
    if not changed:
        assert r["commands"] == [], r


@pytest.fixture(scope="module")
def bridges(lab):
    """Host bridges br0 and br1 (plain kernel bridges, as the network only names them)."""
    for b in ("br0", "br1"):
        lab.exec(["ip", "link", "add", b, "type", "bridge"])
        lab.exec(["ip", "link", "set", b, "up"])
    return ["br0", "br1"]


MODES = [
    ("m-nat", {"forward": "nat", "autostart": True,
               "ip": {"address": "192.168.150.1", "prefix": 24,
                      "dhcp": {"start": "192.168.150.10", "end": "192.168.150.99"}}}),
    ("m-route", {"forward": "route", "ip": {"address": "192.168.151.1/24"}}),
    ("m-open", {"forward": "open", "bridge": "virbr51", "ip": {"address": "192.168.152.1",
                                                                 "prefix": 24}}),
    ("m-iso", {"forward": "isolated", "ip": {"address": "fd00:150::1", "prefix": 64}}),
    ("m-bridge", {"forward": "bridge", "bridge": "br0"}),
    ("m-brvtap", {"forward": "bridge", "interfaces": ["ens32"]}),
    ("m-private", {"forward": "private", "interfaces": ["ens32"]}),
    ("m-vepa", {"forward": "vepa", "interfaces": ["ens32", "ens33"]}),
    ("m-passthru", {"forward": "passthru", "interfaces": ["ens33"]}),
    # No SR-IOV on these machines: a PF pool can be defined, not started.
    ("m-hostdev", {"forward": "hostdev", "pf": "ens33", "state": "present"}),
    ("m-ptpf", {"forward": "passthrough", "pf": "ens33", "state": "inactive"}),
]


def test_every_forward_mode_defined_started_and_rerun_unchanged(lab, bridges):
    for name, opts in MODES:
        args = {"name": name, **opts}
        # Check mode first: planned, nothing defined.
        r = net(lab, args, check=True, diff=True)
        ok_changed(r, True)
        assert r["diff"][0]["before"] == "" and f"<name>{name}</name>" in r["diff"][0]["after"]
        assert not exists(lab, name), name
        r = net(lab, args)
        ok_changed(r, True)
        want_active = opts.get("state", "active") == "active"
        i = info(lab, name)
        assert i["Persistent"] == "yes", (name, i)
        assert i["Active"] == ("yes" if want_active else "no"), (name, i)
        assert i["Autostart"] == ("yes" if opts.get("autostart") else "no"), (name, i)
        assert r["network"]["uuid"] == i["UUID"], (name, r)
        assert r["network"]["active"] is want_active
        assert r["restart_required"] is False
        assert r["xml"] == dumpxml(lab, name, inactive=True).replace('"', "'"), name
        # Rerun, and a rerun in check mode: nothing to do.
        ok_changed(net(lab, args), False)
        ok_changed(net(lab, args, check=True, diff=True), False)
    # What libvirt stored, read back through the result.
    r = net(lab, {"name": "m-nat", "state": "present"})
    assert r["network"]["forward"] == "nat" and r["network"]["bridge"].startswith("virbr")
    r = net(lab, {"name": "m-vepa", "state": "present"})
    assert r["network"]["interfaces"] == ["ens32", "ens33"]
    r = net(lab, {"name": "m-hostdev", "state": "present"})
    assert r["network"]["pf"] == "ens33" and r["network"]["active"] is False
    assert "<forward mode='hostdev' managed='yes'>" in dumpxml(lab, "m-hostdev", inactive=True)
    assert "<bridge name='virbr51'" in dumpxml(lab, "m-open")
    assert "family='ipv6'" in dumpxml(lab, "m-iso")


def test_changed_bridge_on_active_network_then_restart(lab, bridges):
    base = {"name": "hb", "forward": "bridge", "bridge": "br0"}
    ok_changed(net(lab, base), True)
    uuid = info(lab, "hb")["UUID"]
    r = net(lab, {**base, "bridge": "br1"}, diff=True)
    ok_changed(r, True)
    assert r["restart_required"] is True
    assert any("previous definition" in w for w in r["warnings"]), r
    assert [c[3] for c in r["commands"]] == ["net-define"]
    assert "<bridge name='br0'/>" in r["diff"][0]["before"]
    assert "<bridge name='br1'/>" in r["diff"][0]["after"]
    assert "<bridge name='br1'/>" in dumpxml(lab, "hb", inactive=True)
    assert "<bridge name='br0'/>" in dumpxml(lab, "hb"), "running network keeps br0"
    assert info(lab, "hb")["UUID"] == uuid
    # A later run notices the pending change without changing anything.
    r = net(lab, {**base, "bridge": "br1"})
    ok_changed(r, False)
    assert r["restart_required"] is True
    # restart: true applies it to the running network.
    r = net(lab, {**base, "bridge": "br1", "restart": True})
    ok_changed(r, True)
    assert [c[3] for c in r["commands"]] == ["net-destroy", "net-start"]
    assert r["restart_required"] is False
    assert "<bridge name='br1'/>" in dumpxml(lab, "hb")
    assert info(lab, "hb")["Active"] == "yes"
    r = net(lab, {**base, "bridge": "br1", "restart": True})
    ok_changed(r, False)
    assert r["restart_required"] is False
    # Changed and restarted in one run.
    r = net(lab, {**base, "restart": True})
    ok_changed(r, True)
    assert [c[3] for c in r["commands"]] == ["net-define", "net-destroy", "net-start"]
    assert "<bridge name='br0'/>" in dumpxml(lab, "hb")
    assert info(lab, "hb")["UUID"] == uuid


def test_tutorial_networks_defined_by_hand_are_adopted(lab, bridges):
    for xml in (HOST_BRIDGE_XML, VTAP_XML):
        virsh(lab, "net-define", "/dev/stdin", input=xml)
    virsh(lab, "net-autostart", "host-bridge")
    virsh(lab, "net-start", "host-bridge")
    virsh(lab, "net-start", "vtap")
    before = {n: (dumpxml(lab, n, True), dumpxml(lab, n)) for n in ("host-bridge", "vtap")}
    r = net(lab, {"name": "host-bridge", "forward": "bridge", "bridge": "br0",
                  "autostart": True})
    ok_changed(r, False)
    assert "warnings" not in r, r
    r = net(lab, {"name": "vtap", "forward": "private", "interfaces": ["macvtap0"]})
    ok_changed(r, False)
    # macvtap0 does not exist in this lab: libvirt started the network anyway; we warn.
    assert any("'macvtap0', which does not exist" in w for w in r["warnings"]), r
    # The tutorial's own XML through the xml option, and libvirt's stored form.
    ok_changed(net(lab, {"name": "vtap", "xml": VTAP_XML}), False)
    ok_changed(net(lab, {"name": "host-bridge", "xml": before["host-bridge"][0]}), False)
    after = {n: (dumpxml(lab, n, True), dumpxml(lab, n)) for n in ("host-bridge", "vtap")}
    assert after == before
    # libvirt's own default network (stored with a netmask, not a prefix).
    default = dumpxml(lab, "default", True)
    assert "netmask='255.255.255.0'" in default
    r = net(lab, {"name": "default", "forward": "nat", "autostart": True,
                  "ip": {"address": "192.168.122.1/24",
                         "dhcp": {"start": "192.168.122.2", "end": "192.168.122.254"}}})
    ok_changed(r, False)
    assert r["network"]["bridge"] == "virbr0"
    assert dumpxml(lab, "default", True) == default


def test_check_mode_changes_nothing(lab, bridges):
    ok_changed(net(lab, {"name": "ck", "forward": "nat", "autostart": True,
                         "ip": {"address": "192.168.160.1", "prefix": 24}}), True)
    snap = (dumpxml(lab, "ck", True), dumpxml(lab, "ck"), info(lab, "ck"))
    for args in (
        {"name": "ck", "forward": "route", "ip": {"address": "192.168.160.1", "prefix": 24},
         "restart": True},
        {"name": "ck", "state": "inactive", "autostart": False},
        {"name": "ck", "state": "absent"},
    ):
        r = net(lab, args, check=True, diff=True)
        ok_changed(r, True)
        assert r["commands"], r
        assert (dumpxml(lab, "ck", True), dumpxml(lab, "ck"), info(lab, "ck")) == snap, args
    r = net(lab, {"name": "ck", "forward": "route", "ip": {"address": "192.168.160.1",
                                                          "prefix": 24}}, check=True, diff=True)
    xml_diff, state_diff = r["diff"]
    assert "<forward mode='nat'/>" in xml_diff["before"]
    assert "<forward mode='route'/>" in xml_diff["after"]
    # libvirt's bridge name and MAC are kept, not regenerated.
    bridge = info(lab, "ck")["Bridge"]
    assert f"<bridge name='{bridge}'" in xml_diff["after"]
    assert state_diff["before"] == state_diff["after"] == {
        "active": True, "autostart": True, "persistent": True}
    assert r["restart_required"] is True


def test_leaving_an_element_out_removes_it(lab):
    with_dhcp = {"name": "rm", "forward": "nat",
                 "ip": {"address": "192.168.170.1", "prefix": 24,
                        "dhcp": {"start": "192.168.170.10", "end": "192.168.170.20"}}}
    ok_changed(net(lab, with_dhcp), True)
    mac = [line for line in dumpxml(lab, "rm", True).splitlines() if "<mac " in line]
    r = net(lab, {**with_dhcp, "ip": {"address": "192.168.170.1", "prefix": 24},
                  "restart": True})
    ok_changed(r, True)
    xml = dumpxml(lab, "rm")
    assert "<dhcp>" not in xml and "192.168.170.1" in xml
    assert [line for line in xml.splitlines() if "<mac " in line] == mac
    ok_changed(net(lab, {**with_dhcp, "ip": {"address": "192.168.170.1", "prefix": 24}}), False)


def test_states_autostart_transient_and_absent(lab):
    args = {"name": "st", "forward": "isolated"}
    r = net(lab, {**args, "state": "inactive", "autostart": True})
    ok_changed(r, True)
    assert info(lab, "st")["Active"] == "no" and info(lab, "st")["Autostart"] == "yes"
    ok_changed(net(lab, {**args, "state": "present"}), False)
    r = net(lab, {**args, "autostart": False})
    ok_changed(r, True)
    assert [c[3] for c in r["commands"]] == ["net-start", "net-autostart"]
    assert info(lab, "st")["Active"] == "yes" and info(lab, "st")["Autostart"] == "no"
    # absent: destroy and undefine; then nothing to do.
    r = net(lab, {"name": "st", "state": "absent"}, diff=True)
    ok_changed(r, True)
    assert [c[3] for c in r["commands"]] == ["net-destroy", "net-undefine"]
    assert r["diff"][0]["after"] == "" and r["diff"][1]["after"] == {}
    assert not exists(lab, "st")
    ok_changed(net(lab, {"name": "st", "state": "absent"}), False)
    # A transient network (net-create): adopted as persistent, or removed.
    virsh(lab, "net-create", "/dev/stdin",
          input="<network><name>tr</name><forward mode='bridge'/><bridge name='br0'/></network>")
    assert info(lab, "tr")["Persistent"] == "no"
    r = net(lab, {"name": "tr", "state": "present"})
    ok_changed(r, True)
    assert info(lab, "tr")["Persistent"] == "yes" and info(lab, "tr")["Active"] == "yes"
    ok_changed(net(lab, {"name": "tr", "state": "present"}), False)
    virsh(lab, "net-undefine", "tr")
    assert info(lab, "tr")["Persistent"] == "no"
    r = net(lab, {"name": "tr", "state": "absent"})
    ok_changed(r, True)
    assert [c[3] for c in r["commands"]] == ["net-destroy"]
    assert not exists(lab, "tr")


def test_missing_host_devices_are_warned_about(lab):
    r = net(lab, {"name": "wb", "forward": "bridge", "bridge": "br9", "state": "present"})
    ok_changed(r, True)
    assert any("bridge 'br9', which does not exist" in w for w in r["warnings"]), r
    r = net(lab, {"name": "wb", "forward": "bridge", "bridge": "ens32", "state": "present"})
    assert any("bridge 'ens32', which is not a bridge" in w for w in r["warnings"]), r
    ok_changed(net(lab, {"name": "wb", "state": "absent"}), True)


def test_bad_input_fails_and_changes_nothing(lab):
    virsh(lab, "net-define", "/dev/stdin",
          input="<network><name>bad</name><bridge name='virbr77'/></network>")
    before = (virsh(lab, "net-list", "--all"), dumpxml(lab, "bad", True))
    cases = [
        ({"name": "bad", "forward": "nat", "interfaces": ["ens32"]},
         "option 'interfaces' does not fit forward nat"),
        ({"name": "bad", "forward": "nat"}, "missing required option 'ip'"),
        ({"name": "bad", "forward": "bridge"}, "missing required option 'bridge'"),
        ({"name": "bad", "forward": "private"}, "missing required option 'interfaces'"),
        ({"name": "bad", "xml": "<network><name>bad</name>"}, "option 'xml': malformed XML"),
        ({"name": "bad", "xml": "<network><name>other</name></network>"},
         "its <name> is 'other' but option 'name' is 'bad'"),
        ({"name": "bad", "xml": "<network><name>bad</name></network>", "forward": "isolated"},
         "mutually exclusive: xml, forward"),
        ({"name": "bad", "xml": "<network><name>bad</name><uuid>"
          "00000000-0000-0000-0000-000000000001</uuid></network>"},
         "cannot change a network's uuid"),
        ({"name": "new", "state": "active"}, "missing required option 'forward'"),
        ({"name": "bad", "forward": "isolated",
          "uri": "qemu:///system?socket=/run/kvmnet-no-sock"},
         "libvirtd is not reachable at qemu:///system?socket=/run/kvmnet-no-sock"),
        ({"name": "bad", "forward": "nat", "ip": {"address": "10.1.1.1", "prefix": 24,
                                                  "dhcp": {"start": "10.1.2.1",
                                                           "end": "10.1.1.9"}}},
         "option 'ip.dhcp.start': 10.1.2.1 is outside the network"),
    ]
    for args, want in cases:
        for check in (True, False):
            r = net(lab, args, check=check)
            assert r["failed"] is True and r["changed"] is False, (args, r)
            assert want in r["msg"], (args, r["msg"])
            assert r["commands"] == []
    # libvirt itself refuses a definition (an address it cannot read): reported, nothing
    # changed, nothing defined (for the existing network and for a new one).
    for name in ("bad", "bad-new"):
        r = net(lab, {"name": name, "xml": f"<network><name>{name}</name><forward mode='nat'/>"
                      "<ip address='10.9.9.300' prefix='24'/></network>"})
        assert r["failed"] is True and "net-define" in r["msg"], r
        assert r["changed"] is False and r["commands"] == [], r
        assert not exists(lab, "bad-new")
        assert (virsh(lab, "net-list", "--all"), dumpxml(lab, "bad", True)) == before


def libvirt_major(lab):
    return int(lab.info["versions"]["libvirt"].split(".")[0])


def test_what_libvirt_drops_from_an_existing_network_is_rolled_back(lab):
    """libvirt keeps no <dhcp><option> (7.0, 9.0 and 11.3 alike): a run asking for one, with
    another range end, on an existing running network fails verification naming it, and the
    network is as it was: the same definition (uuid, bridge, MAC), running the same live
    definition, nothing pending, the run says so with changed: false. With restart: true
    the network had been restarted on the new definition: it is restarted on the old one."""
    base = {"name": "drop", "forward": "nat", "autostart": True,
            "ip": {"address": "192.168.180.1", "prefix": 24,
                   "dhcp": {"start": "192.168.180.10", "end": "192.168.180.99"}}}
    ok_changed(net(lab, base), True)

    def state():
        return dumpxml(lab, "drop", True), dumpxml(lab, "drop"), info(lab, "drop")

    before = state()
    lossy = before[0].replace(
        "end='192.168.180.99'/>",
        "end='192.168.180.120'/>\n      <option number='6' value='192.168.180.1'/>")
    assert "<option" in lossy
    for restart, ran in ((False, ["net-define", "net-define"]),
                         (True, ["net-define", "net-destroy", "net-start"] * 2)):
        r = net(lab, {"name": "drop", "xml": lossy, "restart": restart})
        assert r["failed"] is True and r["changed"] is False, r
        assert r["error_kind"] == "verification_failed", r
        assert "the definition libvirt stored differs in ip.dhcp.option" in r["msg"], r["msg"]
        assert r["msg"].endswith("rolled back: network drop is as it was before the run "
                                 "(its previous definition and state were put back)"), r["msg"]
        assert [c[3] for c in r["commands"]] == ran, (restart, r["commands"])
        assert "end='192.168.180.120'" in r["stored_xml"] and "<option" not in r["stored_xml"]
        assert r["xml"] == before[0]
        assert not r.get("warnings"), r
        assert state() == before, restart
    ok_changed(net(lab, base), False)
    # <title>: kept from libvirt 11 on, silently dropped by 9.0 and older (7.0 too).
    titled = before[0].replace("</uuid>\n", "</uuid>\n  <title>LAN side</title>\n")
    r = net(lab, {"name": "drop", "xml": titled})
    if libvirt_major(lab) >= 11:
        ok_changed(r, True)
        assert "<title>LAN side</title>" in dumpxml(lab, "drop", True)
        ok_changed(net(lab, {"name": "drop", "xml": titled}), False)
    else:
        assert r["failed"] is True and r["changed"] is False, r
        assert "differs in title" in r["msg"] and "rolled back" in r["msg"], r["msg"]
        assert state() == before
    ok_changed(net(lab, {"name": "drop", "state": "absent"}), True)


def test_virsh_missing_is_a_clear_failure(lab):
    # Hide virsh inside the lab only: /usr there is the lab's copy-on-write overlay.
    fstype = lab.exec(["findmnt", "-n", "-o", "FSTYPE", "/usr"]).stdout.strip()
    assert fstype == "overlay", "refusing to rename virsh outside a lab overlay"
    lab.exec(["mv", "/usr/bin/virsh", "/usr/bin/virsh.kvmnet-hidden"])
    try:
        r = net(lab, {"name": "x", "forward": "isolated"})
    finally:
        lab.exec(["mv", "/usr/bin/virsh.kvmnet-hidden", "/usr/bin/virsh"])
    assert r["failed"] is True and r["error_kind"] == "missing_dependency", r
    assert r["msg"].startswith("virsh not found"), r


def test_no_change_run_is_one_virsh_process(lab, bridges):
    """A no-change run of a network that names a host bridge starts exactly one virsh and
    nothing else: the bridge is checked in sysfs. (Timings belong to bench/run.)"""
    args = {"name": "one", "forward": "bridge", "bridge": "br0", "autostart": True}
    ok_changed(net(lab, args), True)
    r = run_module(lab, "libvirt_net", args, count=True)
    ok_changed(r, False)
    assert not r.get("warnings"), r  # br0 exists: found through sysfs
    assert r["_spawned"] == ["virsh"], r["_spawned"]
    # A bridge that does not exist is still noticed, without spawning anything more.
    lab.exec(["ip", "link", "set", "br0", "name", "br0x"])
    try:
        r = run_module(lab, "libvirt_net", args, count=True)
        assert any("bridge 'br0', which does not exist" in w for w in r.get("warnings", [])), r
        assert r["_spawned"] == ["virsh"], r["_spawned"]
    finally:
        lab.exec(["ip", "link", "set", "br0x", "name", "br0"])

