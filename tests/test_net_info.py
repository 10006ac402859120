"""kvmnet.network.net_info against real NetworkManager 1.42, iproute2 and libvirtd 9.0 in a
lab host (issue 14).

One lab for the file, holding what the tutorial's three methods leave on a host and more:
a NetworkManager bridge br0 with ens32 as its port and a guest's tap, a persistent macvtap0
(NetworkManager profile) and a runtime macvtap9 on ens33, networks of several forward modes
(bridge, private, bridge over a pool, nat, route with a pending change, isolated and
stopped), and guests on each method. Every fact is checked against what nmcli, ip and virsh
say in the lab, never against the module's own idea of it; and the keys of the facts against
the RETURN documentation of plugins/modules/net_info.py, both ways."""

import ast
import json
import os

import pytest
import yaml
from conftest import ROOT, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]


def iface(typ, mac, source):
    return (f"<interface type='{typ}'><mac address='{mac}'/>{source}<model type='virtio'/>"
            "<rom enabled='no'/></interface>")


GUESTS = {
    "vm-bridge": (iface("network", "52:54:00:a1:00:01", "<source network='host-bridge'/>"), True),
    "vm-private": (iface("network", "52:54:00:a2:00:01", "<source network='vtap'/>"), True),
    "vm-direct": (iface("direct", "52:54:00:a3:00:01", "<source dev='ens33' mode='bridge'/>"), True),
    "vm-pool": (iface("network", "52:54:00:a4:00:01", "<source network='brpool'/>"), True),
    "vm-off": (iface("bridge", "52:54:00:a5:00:01", "<source bridge='br0'/>"), False),
}
METHODS = {"vm-bridge": "bridge", "vm-private": "private", "vm-direct": "direct_bridge",
           "vm-pool": "direct_bridge", "vm-off": "bridge"}

NETWORKS = [
    "<network><name>host-bridge</name><forward mode='bridge'/><bridge name='br0'/></network>",
    "<network><name>vtap</name><forward mode='private'><interface dev='macvtap0'/></forward></network>",
    "<network><name>brpool</name><forward mode='bridge'><interface dev='ens33'/></forward></network>",
    "<network><name>routed</name><forward mode='route'/><ip address='192.168.151.1' prefix='24'/></network>",
    "<network><name>iso</name><ip address='192.168.153.1' prefix='24'/></network>",
]


def sh(lab, *argv, check=True, input=None):
    return lab.exec(list(argv), check=check, input=input).stdout


def virsh(lab, *args, input=None):
    return sh(lab, *VIRSH, *args, input=input)


@pytest.fixture(scope="module")
def host(lab):
    """The lab host set up by hand, as an operator following the tutorial would."""
    nm = ["nmcli", "con", "add"]
    sh(lab, *nm, "type", "bridge", "ifname", "br0", "con-name", "bridge-br0", "bridge.stp", "no",
       "ipv4.method", "manual", "ipv4.addresses", "192.0.2.10/24", "ipv6.method", "disabled")
    sh(lab, *nm, "type", "ethernet", "ifname", "ens32", "con-name", "bridge-slave-ens32",
       "master", "br0", "slave-type", "bridge")
    sh(lab, *nm, "type", "macvlan", "ifname", "macvtap0", "con-name", "macvlan-macvtap0", "dev",
       "ens33", "mode", "private", "tap", "yes", "ipv4.method", "disabled", "ipv6.method", "disabled")
    sh(lab, "ip", "link", "add", "link", "ens33", "name", "macvtap9", "type", "macvtap", "mode", "bridge")
    sh(lab, "ip", "link", "set", "dev", "macvtap9", "up")
    sh(lab, "nm-online", "-s", "-q", "-t", "30", check=False)
    for xml in NETWORKS:
        virsh(lab, "net-define", "/dev/stdin", input=xml)
    for n in ("host-bridge", "vtap", "brpool", "routed"):
        virsh(lab, "net-start", n)
    virsh(lab, "net-autostart", "host-bridge")
    # A pending change: the running network keeps its old definition.
    uuid = virsh(lab, "net-uuid", "routed").strip()
    virsh(lab, "net-define", "/dev/stdin", input=NETWORKS[3].replace(
        "<forward", f"<uuid>{uuid}</uuid><forward").replace("192.168.151.1", "192.168.161.1"))
    for name, (xml, start) in GUESTS.items():
        lab.define_guest(name, [xml], start=start)
    # An interface added to the running vm-bridge's definition only (next start).
    virsh(lab, "attach-interface", "--domain", "vm-bridge", "--type", "network", "--source",
          "default", "--mac", "52:54:00:a1:00:02", "--model", "virtio", "--config")
    return lab


def facts(lab, gather=None, **kw):
    args = {} if gather is None else {"gather": gather}
    r = run_module(lab, "net_info", args, **kw)
    assert not r.get("failed"), r
    assert r["changed"] is False and r["commands"] == [], r
    return r, r["ansible_facts"]["kvmnet_net"]


def by_name(items):
    return {i["name"]: i for i in items}


def ip_links(lab):
    return {link["ifname"]: link for link in json.loads(sh(lab, "ip", "-j", "-d", "addr", "show"))}


def active_profiles(lab):
    """device -> (profile name, uuid) of the profiles NetworkManager has active."""
    out = {}
    for line in sh(lab, "nmcli", "-t", "-f", "NAME,UUID,DEVICE", "con", "show", "--active").splitlines():
        name, uuid, dev = line.replace("\\:", "\0").split(":")
        out[dev] = (name.replace("\0", ":"), uuid)
    return out


def domiflist(lab, dom, inactive=False):
    """MAC -> (type, source, model, target) as virsh lists them."""
    rows = virsh(lab, "domiflist", *(["--inactive"] if inactive else []), dom).splitlines()
    return {r.split()[4]: (r.split()[1], r.split()[2], r.split()[3], r.split()[0]) for r in rows}


def test_a_full_run_reports_what_nmcli_ip_and_virsh_say(host):
    r, f = facts(host, count=True)
    # The process budget of the //! header: one nmcli, one ip, two virsh.
    assert sorted(r["_spawned"]) == ["ip", "nmcli", "virsh", "virsh"], r["_spawned"]
    assert sorted(f) == ["bridges", "guests", "macvtaps", "networks"]
    links, active = ip_links(host), active_profiles(host)
    bridges = by_name(f["bridges"])
    kernel_bridges = {n for n, l in links.items() if l.get("linkinfo", {}).get("info_kind") == "bridge"}
    assert kernel_bridges == {n for n, b in bridges.items() if b["present"]}
    for name in kernel_bridges:
        b, k = bridges[name], links[name]
        assert b["stp"] is bool(k["linkinfo"]["info_data"]["stp_state"]), name
        assert (b["mac"], b["up"], b["carrier"]) == (k["address"], "UP" in k["flags"], "LOWER_UP" in k["flags"])
        assert b["addresses"] == [f"{a['local']}/{a['prefixlen']}" for a in k["addr_info"]
                                  if a["scope"] == "global"], name
        assert [p["name"] for p in b["ports"]] == sorted(n for n, l in links.items() if l.get("master") == name)
        for p in b["ports"]:
            kind = links[p["name"]].get("linkinfo", {}).get("info_kind")
            assert p["kind"] == {None: "nic", "tun": "tap"}.get(kind, kind), p
    br0 = bridges["br0"]
    assert (br0["origin"], br0["conn_name"], br0["conn_uuid"]) == ("networkmanager", *active["br0"])
    assert br0["networks"] == ["host-bridge"]
    tap = domiflist(host, "vm-bridge")["52:54:00:a1:00:01"][3]
    ports = by_name(br0["ports"])
    assert (ports["ens32"]["origin"], ports["ens32"]["conn_name"]) == ("networkmanager", "bridge-slave-ens32")
    assert (ports[tap]["kind"], ports[tap]["origin"], ports[tap]["guest"]) == ("tap", "libvirt", "vm-bridge")
    assert (bridges["virbr0"]["origin"], bridges["virbr0"]["networks"]) == ("libvirt", ["default"])


def test_macvtaps_persistent_runtime_and_guests(host):
    _, f = facts(host)
    links = ip_links(host)
    macvtaps = by_name(f["macvtaps"])
    kernel = {n: l for n, l in links.items() if l.get("linkinfo", {}).get("info_kind") == "macvtap"}
    assert set(kernel) == set(macvtaps)
    for name, k in kernel.items():
        m = macvtaps[name]
        assert (m["parent"], m["mode"], m["mac"], m["up"], m["carrier"]) == (
            k["link"], k["linkinfo"]["info_data"]["mode"], k["address"], "UP" in k["flags"],
            "LOWER_UP" in k["flags"]), name
    m0 = macvtaps["macvtap0"]
    assert (m0["persistent"], m0["origin"], m0["conn_name"], m0["networks"]) == (
        True, "networkmanager", "macvlan-macvtap0", ["vtap"])
    m9 = macvtaps["macvtap9"]
    assert (m9["persistent"], m9["origin"], m9["conn_name"], m9["guest"]) == (False, "external", None, None)
    # The macvtaps libvirt made for the running guests, named as virsh names their targets.
    for dom, mac in (("vm-private", "52:54:00:a2:00:01"), ("vm-direct", "52:54:00:a3:00:01"),
                     ("vm-pool", "52:54:00:a4:00:01")):
        target = domiflist(host, dom)[mac][3]
        assert (macvtaps[target]["guest"], macvtaps[target]["origin"]) == (dom, "libvirt"), target
        assert macvtaps[target]["persistent"] is False


def test_networks_as_virsh_lists_them(host):
    _, f = facts(host, gather=["networks"])
    nets = by_name(f["networks"])
    rows = [line.split() for line in virsh(host, "net-list", "--all").splitlines()]
    assert sorted(nets) == sorted(r[0] for r in rows)
    for name, state, autostart, persistent in rows:
        n = nets[name]
        assert (n["active"], n["autostart"], n["persistent"]) == (
            state == "active", autostart == "yes", persistent == "yes"), name
        assert n["uuid"] == virsh(host, "net-uuid", name).strip()
    assert {n: (nets[n]["forward"], nets[n]["method"]) for n in nets} == {
        "default": ("nat", "nat"), "host-bridge": ("bridge", "bridge"), "vtap": ("private", "private"),
        "brpool": ("bridge", "direct_bridge"), "routed": ("route", "route"), "iso": ("isolated", "isolated")}
    assert (nets["host-bridge"]["bridge"], nets["vtap"]["interfaces"]) == ("br0", ["macvtap0"])
    assert nets["routed"]["addresses"] == ["192.168.151.1/24"], "the running definition"
    assert "192.168.161.1" in virsh(host, "net-dumpxml", "--inactive", "routed")
    assert [n for n in nets if nets[n]["restart_required"]] == ["routed"]


def test_guests_on_each_method(host):
    r, f = facts(host, gather=["guests"], count=True)
    assert sorted(r["_spawned"]) == ["ip", "virsh", "virsh"], r["_spawned"]
    guests = by_name(f["guests"])
    assert sorted(guests) == sorted(virsh(host, "list", "--all", "--name").split())
    links = ip_links(host)
    for dom, g in guests.items():
        assert g["state"] == virsh(host, "domstate", dom).strip(), dom
        defined, live = domiflist(host, dom, inactive=True), domiflist(host, dom)
        assert [i["mac"] for i in g["interfaces"]] == list(defined), dom
        for i in g["interfaces"]:
            typ, source, model, _ = defined[i["mac"]]
            assert (i["type"], i["source"], i["model"]) == (typ, source, model), (dom, i)
            target = live.get(i["mac"], (None,) * 4)[3] if g["state"] == "running" else None
            assert i["target"] == target, (dom, i)
            k = links.get(target, {})
            assert (i["bridge"], i["parent"]) == (k.get("master"), k.get("link")), (dom, i)
        assert g["interfaces"][0]["method"] == METHODS.get(dom), dom
    extra = guests["vm-bridge"]["interfaces"][1]
    assert (extra["mac"], extra["method"], extra["restart_required"]) == ("52:54:00:a1:00:02", "nat", True)
    assert not guests["vm-bridge"]["interfaces"][0]["restart_required"]
    assert guests["vm-direct"]["interfaces"][0]["mode"] == "bridge"


def test_gather_reads_only_what_it_needs_and_check_mode_is_the_same(host):
    r, f = facts(host, gather="bridges,macvtaps", count=True)
    assert sorted(r["_spawned"]) == ["ip", "nmcli"], r["_spawned"]
    assert sorted(f) == ["bridges", "macvtaps"]
    # Without libvirt's side, libvirt's bridge is not told apart and cross references are null.
    virbr0 = by_name(f["bridges"])["virbr0"]
    assert (virbr0["origin"], virbr0["networks"]) == ("external", None)
    r, f2 = facts(host, gather="bridges,macvtaps", check=True, diff=True)
    assert f2 == f and "diff" not in r
    r, _ = facts(host, gather=["networks"], count=True)
    assert r["_spawned"] == ["virsh", "virsh"]
    # Read-only: no host lock, in a real run either.
    assert sh(host, "ls", "/run/lock/").split().count("kvmnet.lock") == 0


def test_without_networkmanager_bridges_come_from_the_kernel(host):
    host._stop("nm")  # the lab's own daemon, stopped by its PIDs
    try:
        r, f = facts(host)
        assert r["warnings"] == ["NetworkManager is not running on this host: bridges and macvtap "
                                 "links are read from the kernel alone, without NetworkManager "
                                 "profiles (their origin and persistence are unknown: null)"]
        br0 = by_name(f["bridges"])["br0"]
        assert (br0["present"], br0["origin"], br0["conn_name"]) == (True, None, None)
        assert by_name(f["macvtaps"])["macvtap0"]["persistent"] is None
        assert by_name(f["bridges"])["virbr0"]["origin"] == "libvirt"
        # Named explicitly, bridges still come (NetworkManager is optional).
        r, f = facts(host, gather=["bridges"])
        assert "br0" in by_name(f["bridges"]) and r["warnings"]
    finally:
        host.restart("nm")


def test_without_libvirtd_left_out_unless_named(host):
    host._stop("libvirt")
    try:
        r, f = facts(host)
        assert sorted(f) == ["bridges", "macvtaps"]
        assert len(r["warnings"]) == 1 and r["warnings"][0].startswith(
            "libvirtd is not reachable at qemu:///system"), r
        r = run_module(host, "net_info", {"gather": ["bridges", "networks"]})
        assert r["failed"] and r["error_kind"] == "missing_dependency", r
        assert "gather names networks, which libvirt holds" in r["msg"], r
    finally:
        host.restart("libvirt")


def test_without_the_programs(host):
    # /usr is the lab's own copy-on-write layer: moving a program there stays in the lab.
    sh(host, "mv", "/usr/bin/virsh", "/usr/bin/virsh.off")
    sh(host, "mv", "/usr/bin/nmcli", "/usr/bin/nmcli.off")
    try:
        r, f = facts(host)
        assert sorted(f) == ["bridges", "macvtaps"]
        assert [w.split(":")[0] for w in r["warnings"]] == [
            "NetworkManager (nmcli) is not installed on this host",
            "libvirt's virsh is not installed on this host"], r["warnings"]
        r = run_module(host, "net_info", {"gather": "guests"})
        assert r["failed"] and r["error_kind"] == "missing_dependency", r
    finally:
        sh(host, "mv", "/usr/bin/virsh.off", "/usr/bin/virsh")
        sh(host, "mv", "/usr/bin/nmcli.off", "/usr/bin/nmcli")


# -- the documented RETURN structure (plugins/modules/net_info.py) against the real facts ------

PY_TYPES = {"str": str, "bool": bool, "int": int, "list": list, "dict": dict}
# keys every module result has, documented by Ansible, not by each module; and run_module's own
COMMON = {"failed", "invocation"}


def documented_return() -> dict:
    tree = ast.parse((ROOT / "plugins" / "modules" / "net_info.py").read_text())
    text = next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                and [t.id for t in n.targets if isinstance(t, ast.Name)] == ["RETURN"])
    return yaml.safe_load(text)


def says_null(doc) -> bool:
    words = doc.get("description", "")
    return "null" in " ".join(words if isinstance(words, list) else [words]).lower()


def check_value(value, doc, path, seen):
    """VALUE as documented by DOC (type, elements, contains); every path met goes into SEEN."""
    seen.add(path)
    if value is None:
        assert says_null(doc), f"{path} is null, which its documentation does not allow"
        return
    want = PY_TYPES[doc["type"]]
    assert isinstance(value, want) and not (want is int and isinstance(value, bool)), (path, doc["type"], value)
    if doc["type"] == "dict" and "contains" in doc:
        check_keys(value, doc["contains"], path, seen)
    if doc["type"] == "list" and "elements" in doc:
        element = {"type": doc["elements"], **({"contains": doc["contains"]} if "contains" in doc else {})}
        for item in value:
            check_value(item, element, f"{path}[]", seen)


def check_keys(obj, contains, path, seen):
    """OBJ has no key its documentation lacks, and every documented key whose `returned` is
    unconditional (always, or not said: a nested key) or is about what was gathered (all of it
    here) -- only `warnings` (when there are any) may be absent."""
    undocumented = sorted(set(obj) - set(contains))
    assert not undocumented, f"{path or 'result'} has keys RETURN does not document: {undocumented}"
    for key, doc in contains.items():
        if key not in obj:
            assert doc.get("returned") == "when there are any", f"{path}.{key} is documented but missing"
            continue
        check_value(obj[key], doc, f"{path}.{key}".lstrip("."), seen)


def all_paths(contains, path="") -> set:
    out = set()
    for key, doc in contains.items():
        p = f"{path}.{key}".lstrip(".")
        out.add(p)
        sub = p + "[]" if doc.get("type") == "list" else p
        if doc.get("type") == "list" and doc.get("elements"):
            out.add(sub)
        out |= all_paths(doc.get("contains", {}), sub)
    return out


def test_the_real_facts_have_exactly_the_documented_return_structure(host):
    """The result of a full run on a host with a bridge and its ports (a NIC, a guest's tap),
    macvtap links (persistent, runtime, guests'), networks of each forward mode and guests of
    each method: every key it returns is documented in RETURN with its type (null only where
    the description says so), and every documented key is there, down to each port and each
    guest interface. The samples have the same keys."""
    doc = documented_return()
    r, f = facts(host)
    result = {k: v for k, v in r.items() if not k.startswith("_") and k not in COMMON}
    assert all(f[part] for part in ("bridges", "macvtaps", "networks", "guests")), f
    assert any(b["ports"] for b in f["bridges"]) and any(g["interfaces"] for g in f["guests"]), f
    seen = set()
    check_keys(result, doc, "", seen)
    # warnings: none on this host; commands: always empty, a read-only module changes nothing
    missing = all_paths(doc) - seen - {"warnings", "warnings[]", "commands[]"}
    assert not missing, f"documented, never returned: {sorted(missing)}"
    kvmnet_net = doc["ansible_facts"]["contains"]["kvmnet_net"]["contains"]
    for part, d in kvmnet_net.items():
        for item in d["sample"]:
            assert set(item) == set(d["contains"]), (part, sorted(set(item) ^ set(d["contains"])))
            for key, sub in d["contains"].items():
                for nested in (item[key] if sub.get("contains") else []):
                    assert set(nested) == set(sub["contains"]), (part, key, sorted(set(nested) ^ set(sub["contains"])))
