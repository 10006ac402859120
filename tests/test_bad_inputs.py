"""The project's catalogue of bad inputs and faults (issue 12), against the module binaries
in one lab host with real NetworkManager and libvirtd.

Each row of CASES is a task a careless or hostile playbook could write. Every one must
fail with one JSON object, the expected error_kind, a message that names the option,
`changed: false`, no command reported, and the host exactly as before (a snapshot of what
NetworkManager, the kernel and libvirt hold, taken before and after). Every case runs in
check mode and for real.

Below the table: names that look like options reach every tool as data; names outside
ASCII round-trip (and are refused where the host lacks a UTF-8 C locale); a port that a
bridge made outside NetworkManager holds is refused; no_log hides every value; a name that
holds the old virsh batch marker; profiles that vanish while a module reads them."""

import json
import os
import subprocess
import tempfile
import threading
import time

import pytest
from conftest import ensure_built, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
VM1_MAC = "52:54:00:00:05:01"
BIG = "x" * (10 << 20)  # 10 MB


def sh(lab, *argv, check=True, input=None):
    return lab.exec(list(argv), check=check, input=input).stdout


def snapshot(lab) -> dict:
    """What the host holds that a module could change: NM profiles (with activation and
    autoconnect), links with their kind, master and addresses, libvirt networks and
    domains (inactive definitions, state, autostart), and kvmnet's own state directory."""
    nm = sh(lab, "nmcli", "-t", "-f", "NAME,UUID,TYPE,DEVICE,ACTIVE,AUTOCONNECT", "con", "show")
    links = []
    for link in json.loads(sh(lab, "ip", "-j", "-d", "addr", "show")):
        info = link.get("linkinfo", {})
        links.append((link["ifname"], link.get("master"), info.get("info_kind"),
                      link.get("address"), "UP" in link.get("flags", []),
                      sorted(f'{a["local"]}/{a["prefixlen"]}' for a in link.get("addr_info", [])
                             if a.get("scope") != "link")))
    nets = {}
    for n in sh(lab, *VIRSH, "net-list", "--all", "--name").split():
        nets[n] = (sh(lab, *VIRSH, "net-dumpxml", "--inactive", "--network", n),
                   sh(lab, *VIRSH, "net-info", "--network", n))
    doms = {}
    for d in sh(lab, *VIRSH, "list", "--all", "--name").split():
        doms[d] = (sh(lab, *VIRSH, "dumpxml", "--inactive", "--domain", d),
                   sh(lab, *VIRSH, "domstate", "--domain", d))
    state = sh(lab, "sh", "-c", "ls -R /var/lib/kvmnet 2>/dev/null || true")
    return {"nm": sorted(nm.splitlines()), "links": sorted(links), "nets": nets, "doms": doms,
            "kvmnet": state}


@pytest.fixture(scope="module")
def host(lab):
    """The lab as a careless playbook finds it: an NM bridge br5 (static address, no
    ports), a kernel bridge br8 made with ip holding ens32, a libvirt network lan5 on br5,
    and a defined guest vm1 with one interface on network default."""
    sh(lab, "nmcli", "con", "add", "type", "bridge", "ifname", "br5", "con-name", "br5",
       "bridge.stp", "no", "ipv4.method", "manual", "ipv4.addresses", "192.0.2.5/24",
       "ipv6.method", "disabled")
    sh(lab, "nmcli", "con", "up", "br5")
    sh(lab, "ip", "link", "add", "br8", "type", "bridge")
    sh(lab, "ip", "link", "set", "dev", "ens32", "master", "br8")
    sh(lab, "ip", "link", "set", "dev", "br8", "up")
    sh(lab, *VIRSH, "net-define", "--file", "/dev/stdin",
       input="<network><name>lan5</name><forward mode='bridge'/><bridge name='br5'/></network>")
    sh(lab, *VIRSH, "net-start", "--network", "lan5")
    lab.define_guest("vm1", [f"<interface type='network'><mac address='{VM1_MAC}'/>"
                             "<source network='default'/><model type='virtio'/>"
                             "<rom enabled='no'/></interface>"])
    # NetworkManager goes on a moment after the commands return (activations, the
    # profiles it generates for br8): start from a host that has settled.
    deadline = time.monotonic() + 20
    last = snapshot(lab)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = snapshot(lab)
        if now == last:
            break
        last = now
    return lab


NB, MV, LN, DI, NI = "nm_bridge", "macvtap_link", "libvirt_net", "domain_iface", "net_info"
INVALID, UNSUPPORTED = "invalid_argument", "not_supported"

# (id, module, options, error_kind, text the message must contain[, "warns in check mode"])
CASES = [
    # nm_bridge
    ("nb-no-name", NB, {}, INVALID, "name"),
    ("nb-empty-name", NB, {"name": ""}, INVALID, "option 'name'"),
    ("nb-slash", NB, {"name": "a/b"}, INVALID, "option 'name'"),
    ("nb-colon", NB, {"name": "br:0"}, INVALID, "option 'name'"),
    ("nb-long", NB, {"name": "b" * 16}, INVALID, "option 'name'"),
    ("nb-dot", NB, {"name": "."}, INVALID, "option 'name'"),
    ("nb-dotdot", NB, {"name": ".."}, INVALID, "option 'name'"),
    ("nb-space", NB, {"name": "br 0"}, INVALID, "option 'name'"),
    ("nb-newline", NB, {"name": "br0\n"}, INVALID, "option 'name'"),
    ("nb-nul", NB, {"name": "br\u00000"}, INVALID, "option 'name'"),
    ("nb-mtu-u64", NB, {"name": "br0", "mtu": 18446744073709551615}, INVALID, "option 'mtu'"),
    ("nb-mtu-text", NB, {"name": "br0", "mtu": "abc"}, INVALID, "option 'mtu'"),
    ("nb-mtu-range", NB, {"name": "br0", "mtu": 20}, INVALID, "option 'mtu'"),
    ("nb-mtu-float", NB, {"name": "br0", "mtu": 1500.5}, INVALID, "option 'mtu'"),
    ("nb-delay", NB, {"name": "br0", "forward_delay": 99}, INVALID, "option 'forward_delay'"),
    ("nb-priority", NB, {"name": "br0", "priority": -1}, INVALID, "option 'priority'"),
    ("nb-stp", NB, {"name": "br0", "stp": "maybe"}, INVALID, "option 'stp'"),
    ("nb-mac", NB, {"name": "br0", "mac": "zz:zz"}, INVALID, "option 'mac'"),
    ("nb-manual-no-addr", NB, {"name": "br0", "ipv4": {"method": "manual"}}, INVALID,
     "ipv4.method"),
    ("nb-bad-addr", NB, {"name": "br0", "ipv4": {"addresses": ["300.1.1.1/24"]}}, INVALID,
     "ipv4.addresses[0]"),
    ("nb-v6-in-v4", NB, {"name": "br0", "ipv4": {"addresses": ["2001:db8::1/64"]}}, INVALID,
     "ipv4.addresses[0]"),
    ("nb-gw-alone", NB, {"name": "br0", "ipv4": {"gateway": "192.0.2.1"}}, INVALID,
     "ipv4.gateway"),
    ("nb-bad-dns", NB, {"name": "br0", "ipv6": {"dns": ["nameserver"]}}, INVALID, "ipv6.dns[0]"),
    ("nb-own-port", NB, {"name": "br0", "ports": ["br0"]}, INVALID, "option 'ports'"),
    ("nb-missing-port", NB, {"name": "br0", "ports": ["nosuch0"]}, INVALID, "option 'ports'"),
    ("nb-bridge-port", NB, {"name": "br0", "ports": ["br5"]}, INVALID, "option 'ports'"),
    ("nb-foreign-bridge", NB, {"name": "br0", "ports": ["ens32"]}, UNSUPPORTED, "'br8'"),
    ("nb-huge-conn-name", NB, {"name": "br0", "conn_name": BIG}, INVALID, "option 'conn_name'"),
    ("nb-conn-name-ctrl", NB, {"name": "br0", "conn_name": "a\tb"}, INVALID, "option 'conn_name'"),
    ("nb-conn-name-taken", NB, {"name": "br0", "conn_name": "br5"}, INVALID, "option 'conn_name'"),
    ("nb-unknown-option", NB, {"name": "br0", "colour": "red"}, INVALID, "colour"),
    ("nb-port-profiles", NB, {"name": "br0", "port_profiles": "nuke"}, INVALID,
     "option 'port_profiles'"),
    ("nb-ports-type", NB, {"name": "br0", "ports": {"a": 1}}, INVALID, "option 'ports'"),
    ("nb-too-many-ports", NB, {"name": "br0", "ports": ["e%d" % i for i in range(1025)]}, INVALID,
     "option 'ports'"),
    # macvtap_link
    ("mv-no-link", MV, {"name": "mvt0"}, INVALID, "link"),
    ("mv-mode", MV, {"name": "mvt0", "link": "ens33", "mode": "promisc"}, INVALID,
     "option 'mode'"),
    ("mv-no-parent", MV, {"name": "mvt0", "link": "nosuch0", "mode": "bridge"}, INVALID,
     "option 'link'"),
    ("mv-parent-in-bridge", MV, {"name": "mvt0", "link": "ens32", "mode": "bridge"}, UNSUPPORTED,
     "option 'link'"),
    ("mv-own-parent", MV, {"name": "mvt0", "link": "mvt0", "mode": "bridge"}, INVALID,
     "option 'link'"),
    ("mv-multicast", MV, {"name": "mvt0", "link": "ens33", "mode": "bridge",
                          "mac": "01:00:5e:00:00:01"}, INVALID, "option 'mac'"),
    ("mv-passthrough-mac", MV, {"name": "mvt0", "link": "ens33", "mode": "passthru",
                                "mac": "52:54:00:00:00:09"}, INVALID, "option 'mac'"),
    ("mv-conn-name-runtime", MV, {"name": "mvt0", "link": "ens33", "mode": "bridge",
                                  "conn_name": "x"}, INVALID, "option 'conn_name'"),
    ("mv-persistent-down", MV, {"name": "mvt0", "link": "ens33", "mode": "bridge",
                                "persistent": True, "up": False}, INVALID, "option 'up'"),
    ("mv-name-is-bridge", MV, {"name": "br5", "link": "ens33", "mode": "bridge"}, UNSUPPORTED,
     "option 'name'"),
    ("mv-name-ctrl", MV, {"name": "mv\u0001", "link": "ens33", "mode": "bridge"}, INVALID,
     "option 'name'"),
    ("mv-parent-slash", MV, {"name": "mvt0", "link": "../x", "mode": "bridge"}, INVALID,
     "option 'link'"),
    # libvirt_net
    ("ln-empty-name", LN, {"name": ""}, INVALID, "option 'name'"),
    ("ln-slash", LN, {"name": "a/b", "forward": "bridge", "bridge": "br5"}, INVALID,
     "option 'name'"),
    ("ln-nothing-to-define", LN, {"name": "n1"}, INVALID, "forward"),
    ("ln-mode", LN, {"name": "n1", "forward": "tunnel"}, INVALID, "option 'forward'"),
    ("ln-bridge-missing", LN, {"name": "n1", "forward": "bridge"}, INVALID, "bridge"),
    ("ln-nat-no-ip", LN, {"name": "n1", "forward": "nat"}, INVALID, "'ip'"),
    ("ln-no-prefix", LN, {"name": "n1", "forward": "nat", "ip": {"address": "192.168.1.1"}},
     INVALID, "ip.prefix"),
    ("ln-dhcp-outside", LN, {"name": "n1", "forward": "nat", "ip": {
        "address": "192.168.1.1/24", "dhcp": {"start": "10.0.0.2", "end": "10.0.0.9"}}},
     INVALID, "ip.dhcp.start"),
    ("ln-xml-broken", LN, {"name": "n1", "xml": "<network>"}, INVALID, "option 'xml'"),
    ("ln-xml-root", LN, {"name": "n1", "xml": "<domain/>"}, INVALID, "option 'xml'"),
    ("ln-xml-name", LN, {"name": "n1", "xml": "<network><name>n2</name></network>"}, INVALID,
     "option 'xml'"),
    ("ln-xml-and-forward", LN, {"name": "n1", "xml": "<network/>", "forward": "nat"}, INVALID,
     "xml, forward"),
    ("ln-xml-uuid", LN, {"name": "lan5", "xml": "<network><name>lan5</name><uuid>"
                         "00000000-0000-4000-8000-000000000001</uuid><forward mode='bridge'/>"
                         "<bridge name='br5'/></network>"}, INVALID, "option 'xml'"),
    ("ln-xml-huge", LN, {"name": "n1", "xml": "<network>" + " " * (300 << 10) + "</network>"},
     INVALID, "option 'xml'"),
    ("ln-xml-nul", LN, {"name": "n1", "xml": "<network>\u0000</network>"}, INVALID,
     "option 'xml'"),
    ("ln-absent-autostart", LN, {"name": "n1", "state": "absent", "autostart": True}, INVALID,
     "option 'autostart'"),
    ("ln-empty-pool", LN, {"name": "n1", "forward": "private", "interfaces": []}, INVALID,
     "option 'interfaces'"),
    ("ln-pool-twice", LN, {"name": "n1", "forward": "vepa", "interfaces": ["ens33", "ens33"]},
     INVALID, "option 'interfaces'"),
    ("ln-ip-misfit", LN, {"name": "n1", "forward": "bridge", "bridge": "br5",
                          "ip": {"address": "192.168.1.1/24"}}, INVALID, "option 'ip'"),
    ("ln-empty-uri", LN, {"name": "n1", "uri": ""}, INVALID, "option 'uri'"),
    ("ln-state", LN, {"name": "lan5", "state": "running"}, INVALID, "option 'state'"),
    # domain_iface
    ("di-no-domain", DI, {}, INVALID, "domain"),
    ("di-option-domain", DI, {"domain": "--domain=vm1", "type": "bridge", "source": "br5"},
     INVALID, "option 'domain'"),
    ("di-help-domain", DI, {"domain": "--help"}, INVALID, "option 'domain'"),
    # A bridge or network an earlier task may create is only a warning in check mode.
    ("di-help-bridge", DI, {"domain": "vm1", "type": "bridge", "source": "--help"}, INVALID,
     "option 'source'", "warns in check mode"),
    ("di-help-network", DI, {"domain": "vm1", "type": "network", "source": "--help"}, INVALID,
     "option 'source'", "warns in check mode"),
    ("di-direct-no-mode", DI, {"domain": "vm1", "type": "direct", "source": "ens33"}, INVALID,
     "mode"),
    ("di-mode-misfit", DI, {"domain": "vm1", "type": "bridge", "source": "br5", "mode": "vepa"},
     INVALID, "option 'mode'"),
    ("di-bad-mac", DI, {"domain": "vm1", "mac": "52:54"}, INVALID, "option 'mac'"),
    ("di-unknown-mac", DI, {"domain": "vm1", "mac": "52:54:00:00:05:99"}, INVALID,
     "option 'mac'"),
    ("di-absent-no-mac", DI, {"domain": "vm1", "state": "absent"}, INVALID, "mac"),
    ("di-live", DI, {"domain": "vm1", "live": "sometimes"}, INVALID, "option 'live'"),
    ("di-no-device", DI, {"domain": "vm1", "type": "direct", "source": "nosuch0",
                          "mode": "bridge"}, INVALID, "option 'source'"),
    ("di-not-a-bridge", DI, {"domain": "vm1", "type": "bridge", "source": "ens33"}, INVALID,
     "option 'source'"),
    ("di-model", DI, {"domain": "vm1", "model": "vir tio"}, INVALID, "option 'model'"),
    ("di-domain-ctrl", DI, {"domain": "vm1\r"}, INVALID, "option 'domain'"),
    ("di-type", DI, {"domain": "vm1", "type": "hostdev", "source": "x"}, INVALID, "option 'type'"),
    # net_info (read-only: it must refuse before reading anything, too)
    ("ni-gather", NI, {"gather": ["bridges", "vms"]}, INVALID, "option 'gather'"),
    ("ni-gather-empty", NI, {"gather": []}, INVALID, "option 'gather'"),
    ("ni-gather-type", NI, {"gather": {"bridges": True}}, INVALID, "gather"),
    ("ni-uri-empty", NI, {"uri": " "}, INVALID, "option 'uri'"),
    ("ni-uri-nul", NI, {"uri": "qemu:///sys\u0000tem"}, INVALID, "option 'uri'"),
    ("ni-unknown", NI, {"name": "br0"}, INVALID, "name"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_and_changes_nothing(host, case):
    _, module, args, kind, named = case[:5]
    check_warns = case[5:] == ("warns in check mode",)
    before = snapshot(host)
    for check in (True, False):
        r = run_module(host, module, args, check=check, diff=True)
        if check and check_warns:
            assert not r.get("failed"), r
            assert any(named in w for w in r["warnings"]), r
            assert snapshot(host) == before
            continue
        assert r["failed"] is True, r
        assert r["error_kind"] == kind, r["msg"]
        assert named in r["msg"], r["msg"]
        assert r["changed"] is False, r["msg"]
        assert r["commands"] == [], r["commands"]
        # A refused value is never echoed back whole (the 10 MB cases).
        assert len(json.dumps(r)) < (512 << 10)
        assert snapshot(host) == before, (case[0], check)


def test_the_catalogue_covers_every_module_and_class():
    by_module = {}
    for _, module, _, kind, *_ in CASES:
        by_module.setdefault(module, set()).add(kind)
    assert set(by_module) == {NB, MV, LN, DI, NI}
    assert len(CASES) >= 80


# --- names that look like options are data, for every tool ------------------------------


def test_option_looking_names_reach_every_tool_as_data(host):
    """nmcli (profile names), ip (link names), virsh (network and domain names): each
    created under a name that looks like an option, found again by that name, and
    nothing else touched."""
    vm1_before = sh(host, *VIRSH, "dumpxml", "--inactive", "--domain", "vm1")
    # nmcli: a bridge whose profile is named like an option.
    args = {"name": "br-opt", "conn_name": "--help", "stp": False,
            "ipv4": {"method": "disabled"}, "ipv6": {"method": "disabled"}}
    r = run_module(host, NB, args)
    assert r["changed"] is True and not r.get("failed"), r
    names = sh(host, "nmcli", "-g", "NAME", "con", "show").splitlines()
    assert "--help" in names
    assert run_module(host, NB, args)["changed"] is False
    assert run_module(host, NB, {"name": "br-opt", "state": "absent"})["changed"] is True
    assert "--help" not in sh(host, "nmcli", "-g", "NAME", "con", "show").splitlines()
    # ip: a macvtap whose name starts with dashes.
    args = {"name": "-x0", "link": "ens33", "mode": "bridge"}
    r = run_module(host, MV, args)
    assert r["changed"] is True and not r.get("failed"), r
    assert json.loads(sh(host, "ip", "-j", "link", "show", "dev", "-x0"))[0]["ifname"] == "-x0"
    assert run_module(host, MV, args)["changed"] is False
    assert run_module(host, MV, {"name": "-x0", "state": "absent"})["changed"] is True
    # virsh: a network and a domain named like options.
    args = {"name": "--help", "forward": "bridge", "bridge": "br5", "state": "present"}
    r = run_module(host, LN, args)
    assert r["changed"] is True and not r.get("failed"), r
    assert "--help" in sh(host, *VIRSH, "net-list", "--all", "--name").split()
    assert run_module(host, LN, args)["changed"] is False
    host.define_guest("--domain=vm1", [])
    r = run_module(host, DI, {"domain": "--domain=vm1", "mac": "52:54:00:00:05:77",
                              "type": "bridge", "source": "br5"})
    assert r["changed"] is True and not r.get("failed"), r
    dom = sh(host, *VIRSH, "dumpxml", "--inactive", "--domain", "--domain=vm1")
    assert "52:54:00:00:05:77" in dom and "<source bridge='br5'/>" in dom
    assert sh(host, *VIRSH, "dumpxml", "--inactive", "--domain", "vm1") == vm1_before
    # clean up
    assert run_module(host, LN, {"name": "--help", "state": "absent"})["changed"] is True
    sh(host, *VIRSH, "undefine", "--domain", "--domain=vm1")


# --- names outside ASCII -----------------------------------------------------------------


def test_non_ascii_names_are_found_again_never_duplicated(host):
    # A bridge made by hand as in the tutorial, named outside ASCII, is adopted.
    sh(host, "nmcli", "con", "add", "type", "bridge", "ifname", "brü", "con-name", "brü",
       "bridge.stp", "no", "ipv4.method", "disabled", "ipv6.method", "disabled")
    try:
        args = {"name": "brü", "stp": False, "ipv4": {"method": "disabled"}}
        r = run_module(host, NB, args, check=True, diff=True)
        assert not any(c[:3] == ["nmcli", "con", "add"] for c in r["commands"]), r
        assert r["bridge"]["conn_name"] == "brü"
        r = run_module(host, NB, args)
        assert not r.get("failed"), r
        assert run_module(host, NB, args)["changed"] is False
        ids = sh(host, "nmcli", "-g", "NAME", "con", "show").splitlines()
        assert ids.count("brü") == 1, ids
        # A persistent macvtap outside ASCII: made once, found on every rerun.
        args = {"name": "mvtü", "link": "ens33", "mode": "bridge", "persistent": True}
        r = run_module(host, MV, args)
        assert r["changed"] is True and not r.get("failed"), r
        r = run_module(host, MV, args)
        assert r["changed"] is False and not r.get("failed"), r
        assert sh(host, "nmcli", "-g", "NAME", "con", "show").splitlines().count(
            "macvlan-mvtü") == 1
        # libvirt names too.
        args = {"name": "netü", "forward": "bridge", "bridge": "brü", "state": "present"}
        assert run_module(host, LN, args)["changed"] is True
        assert run_module(host, LN, args)["changed"] is False
        assert run_module(host, LN, {"name": "netü", "state": "absent"})["changed"] is True
    finally:
        run_module(host, MV, {"name": "mvtü", "state": "absent"})
        run_module(host, NB, {"name": "brü", "state": "absent"})


def test_without_a_utf8_locale_non_ascii_names_are_refused(host):
    """On a host without C.UTF-8 the tools print '?' for such names: the modules refuse
    them up front instead of never finding their own objects."""
    locales = sh(host, "sh", "-c", "ls -d /usr/lib/locale/C.*").split()
    assert locales, "this lab has no C.UTF-8 to hide"
    hidden = [f"{p}.hidden" for p in locales]
    for p, h in zip(locales, hidden):
        sh(host, "mv", p, h)  # the lab's /usr is a throw-away overlay
    try:
        before = snapshot(host)
        for module, args, option in (
            (NB, {"name": "brö"}, "name"),
            (MV, {"name": "mvtö", "link": "ens33", "mode": "bridge", "persistent": True}, "name"),
            (LN, {"name": "netö", "forward": "bridge", "bridge": "br5"}, "name"),
            (DI, {"domain": "vm1", "type": "bridge", "source": "bö"}, "source"),
        ):
            r = run_module(host, module, args)
            assert r["failed"] and r["error_kind"] == "not_supported", r
            assert r["msg"].startswith(f"option '{option}'") and "C.UTF-8" in r["msg"], r["msg"]
            assert r["changed"] is False
        assert snapshot(host) == before
        # ASCII names keep working without the locale.
        r = run_module(host, LN, {"name": "lan5", "state": "present"})
        assert r["changed"] is False and not r.get("failed"), r
    finally:
        for p, h in zip(locales, hidden):
            sh(host, "mv", h, p)


# --- a port held by a bridge made outside NetworkManager ----------------------------------


def test_port_in_a_bridge_made_outside_nm_is_refused_naming_it(host):
    before = snapshot(host)
    for check in (True, False):
        r = run_module(host, NB, {"name": "br0", "ports": ["ens32"], "stp": False,
                                  "ipv4": {"method": "disabled"}}, check=check)
        assert r["failed"] and r["error_kind"] == "not_supported", r
        assert "ens32 is already a port of bridge 'br8'" in r["msg"], r["msg"]
        assert "ip link set dev ens32 nomaster" in r["msg"]
    assert snapshot(host) == before
    assert json.loads(sh(host, "ip", "-j", "link", "show", "dev", "ens32"))[0]["master"] == "br8"


# --- no_log -------------------------------------------------------------------------------


def test_no_log_hides_every_option_value_in_every_part_of_the_result(host):
    secret = "s3cr3t-net"
    args = {"name": secret, "forward": "bridge", "bridge": "br5", "state": "present"}
    try:
        for check in (True, False):
            r = run_module(host, LN, args, check=check, diff=True, no_log=True)
            assert r["changed"] is True, r
            text = json.dumps(r)
            assert secret not in text, text
            assert "br5" not in text, text
        # A failure's message, cmd and stderr too.
        r = run_module(host, DI, {"domain": secret, "type": "bridge", "source": "br5"},
                       no_log=True)
        assert r["failed"] and secret not in json.dumps(r), r
        r = run_module(host, MV, {"name": "mvs0", "link": "ens32", "mode": "bridge",
                                  "mac": "52:54:00:9a:9a:9a"}, no_log=True)
        assert r["failed"] and "52:54:00:9a:9a:9a" not in json.dumps(r), r
        assert "ens32" not in r["msg"], r["msg"]
    finally:
        run_module(host, LN, {"name": secret, "state": "absent"})


# --- the virsh batch marker ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["m@@kvmnet-section@@", "@@kvmnet-00@@x", "a ; echo @@b"])
def test_names_and_descriptions_holding_batch_markers(host, name):
    # libvirt 9.0 keeps no <description> for networks; a DNS TXT record carries the text.
    xml = (f"<network><name>{name}</name><bridge name='virbrm9'/><dns>"
           "<txt name='m1' value='@@kvmnet-section@@'/>"
           "<txt name='m2' value='@@kvmnet-000102030405060708090a0b0c0d0e0f@@'/></dns>"
           "<ip address='192.168.170.1' prefix='24'/></network>")
    args = {"name": name, "xml": xml, "state": "present"}
    r = run_module(host, LN, args)
    assert r["changed"] is True and not r.get("failed"), r
    assert name in sh(host, *VIRSH, "net-list", "--all", "--name").splitlines()
    r = run_module(host, LN, args)
    assert r["changed"] is False and not r.get("failed"), r
    r = run_module(host, LN, {"name": name, "state": "absent"})
    assert r["changed"] is True and not r.get("failed"), r
    assert name not in sh(host, *VIRSH, "net-list", "--all", "--name").splitlines()
    # A domain named like a marker is found too.
    host.define_guest(name.replace(" ", "").replace(";", ""), [])
    dom = name.replace(" ", "").replace(";", "")
    r = run_module(host, DI, {"domain": dom, "mac": "52:54:00:00:05:78", "type": "bridge",
                              "source": "br5"})
    assert r["changed"] is True and not r.get("failed"), r
    sh(host, *VIRSH, "undefine", "--domain", dom)


# --- profiles that vanish while a module reads --------------------------------------------


def test_profiles_vanishing_during_a_read_never_fail_a_run(host):
    """NetworkManager makes an in-memory profile for every link configured outside it and
    drops it when the link goes (as after a bridge's profile is deleted). A churn of such
    links makes profiles vanish between nmcli's list call and its property call; every run
    of the module must still succeed."""
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            n = f"chn{i % 4}"
            host.exec(["ip", "link", "add", n, "type", "bridge"], check=False)
            host.exec(["ip", "link", "set", "dev", n, "up"], check=False)
            host.exec(["ip", "addr", "add", f"203.0.113.{i % 4 + 1}/32", "dev", n], check=False)
            host.exec(["ip", "link", "del", n], check=False)
            i += 1

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        failures = []
        for i in range(25):
            state = "present" if i % 2 == 0 else "absent"
            args = {"name": "brv", "stp": False, "ipv4": {"method": "disabled"},
                    "ipv6": {"method": "disabled"}, "state": state}
            r = run_module(host, NB, args)
            if r.get("failed"):
                failures.append(r["msg"])
        assert failures == []
    finally:
        stop.set()
        t.join(timeout=30)
        run_module(host, NB, {"name": "brv", "state": "absent"})
        for i in range(4):
            host.exec(["ip", "link", "del", f"chn{i}"], check=False)


# --- faults: daemons down -----------------------------------------------------------------


def test_daemons_down_fail_clearly(host):
    before = snapshot(host)
    nm_pid = None
    try:
        # NetworkManager stopped: the NM modules say so and change nothing.
        for p in host.processes():
            if p.comm == "NetworkManager":
                nm_pid = p.pid
        assert nm_pid
        os.kill(nm_pid, 15)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(p.pid == nm_pid for p in host.processes()):
            time.sleep(0.1)
        for module, args in ((NB, {"name": "br0", "stp": False}),
                             (MV, {"name": "mvt0", "link": "ens33", "mode": "bridge",
                                   "persistent": True})):
            r = run_module(host, module, args)
            assert r["failed"] and r["error_kind"] == "missing_dependency", r
            assert "NetworkManager" in r["msg"] and r["changed"] is False, r
    finally:
        host.restart("nm")
    after = snapshot(host)
    assert after["doms"] == before["doms"] and after["nets"] == before["nets"]
