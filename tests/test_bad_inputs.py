"""The project's catalogue of bad inputs and faults (issue 12), against the module binaries
in one lab host with real NetworkManager and libvirtd.

Each row of CASES is a task a careless or hostile playbook could write. Every one must
fail with one JSON object, the expected error_kind, a message that names the option,
`changed: false`, no command reported, and the host exactly as before (a snapshot of what
NetworkManager, the kernel and libvirt hold, taken before and after). Every case runs in
check mode and for real. A row flagged "no_log" runs as a no_log task: no value it gave
may appear anywhere in the result.

Below the table: names that look like options reach every tool as data (profile, link,
network and domain names, and interface names starting with '-' in every module that takes
one); names outside ASCII round-trip (and are refused where the host lacks a UTF-8 C
locale); a port that a bridge made outside NetworkManager holds is refused; no_log hides
every value; a name that holds the old virsh batch marker; profiles that vanish while a
module reads them; NetworkManager or libvirtd down. Each of these compares the host's
snapshot too: unchanged by every refusal, and where a run legitimately changes the host,
changed in exactly the expected objects and back to the start after the cleanup.

test_the_catalogue_covers_every_module_and_class needs no lab: it checks that every module
and every class of bad input issue 12 names is represented."""

import json
import os
import threading
import time

import pytest
from conftest import run_module

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]
VM1_MAC = "52:54:00:00:05:01"
BIG = "x" * (10 << 20)  # 10 MB
FOREIGN_PORT, FOREIGN_BRIDGE = "ens32", "br8"  # the host fixture's bridge made with ip
PARTS = ("nm", "links", "nets", "doms", "kvmnet")


def sh(lab, *argv, check=True, input=None):
    return lab.exec(list(argv), check=check, input=input).stdout


def terse_fields(line: str) -> list:
    """One line of nmcli's terse list output split on its unescaped colons, unescaped."""
    fields, cur, esc = [], "", False
    for ch in line:
        if esc:
            cur, esc = cur + ch, False
        elif ch == "\\":
            esc = True
        elif ch == ":":
            fields, cur = fields + [cur], ""
        else:
            cur += ch
    return fields + [cur]


def snapshot(lab, parts=PARTS) -> dict:
    """What the host holds that a module could change: NM profiles by UUID (name, type,
    device, activation, autoconnect), links by name (master, kind, MAC, up, addresses),
    libvirt networks and domains by name (listed one a line: names may hold spaces; inactive
    definitions, state, autostart), and kvmnet's own state directory. ``parts``: only those
    (nmcli cannot answer while NM is down, virsh while libvirtd is)."""
    snap = {}
    if "nm" in parts:
        nm = sh(lab, "nmcli", "-t", "-f", "UUID,NAME,TYPE,DEVICE,ACTIVE,AUTOCONNECT", "con",
                "show")
        snap["nm"] = {f[0]: tuple(f[1:]) for f in map(terse_fields, nm.splitlines())}
    if "links" in parts:
        snap["links"] = {}
        for link in json.loads(sh(lab, "ip", "-j", "-d", "addr", "show")):
            info = link.get("linkinfo", {})
            snap["links"][link["ifname"]] = (
                link.get("master"), info.get("info_kind"), link.get("address"),
                "UP" in link.get("flags", []),
                sorted(f'{a["local"]}/{a["prefixlen"]}' for a in link.get("addr_info", [])
                       if a.get("scope") != "link"))
    if "nets" in parts:
        snap["nets"] = {n: (sh(lab, *VIRSH, "net-dumpxml", "--inactive", "--network", n),
                            sh(lab, *VIRSH, "net-info", "--network", n))
                        for n in sh(lab, *VIRSH, "net-list", "--all", "--name").splitlines() if n}
    if "doms" in parts:
        snap["doms"] = {d: (sh(lab, *VIRSH, "dumpxml", "--inactive", "--domain", d),
                            sh(lab, *VIRSH, "domstate", "--domain", d))
                        for d in sh(lab, *VIRSH, "list", "--all", "--name").splitlines() if d}
    if "kvmnet" in parts:
        snap["kvmnet"] = sh(lab, "sh", "-c", "ls -R /var/lib/kvmnet 2>/dev/null || true")
    return snap


def settled(lab, timeout: float = 20) -> dict:
    """A snapshot once NetworkManager has settled (it goes on a moment after a command
    returns: activations, the profiles it generates for links made outside it, a restart):
    two snapshots half a second apart agree, or the last after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = snapshot(lab)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = snapshot(lab)
        if now == last:
            break
        last = now
    return last


def delta(before: dict, after: dict) -> dict:
    """How the host changed, per part: names added (+), removed (-) and changed (~); NM
    profiles by name (a duplicate shows as the name twice). Empty when nothing changed."""
    out = {}
    for part in set(before) & set(after):
        if part == "kvmnet":
            if before[part] != after[part]:
                out[part] = after[part]
            continue
        b, a = before[part], after[part]
        name = (lambda k, rec: rec[0]) if part == "nm" else (lambda k, rec: k)
        d = {"+": sorted(name(k, a[k]) for k in set(a) - set(b)),
             "-": sorted(name(k, b[k]) for k in set(b) - set(a)),
             "~": sorted(name(k, a[k]) for k in set(a) & set(b) if a[k] != b[k])}
        d = {k: v for k, v in d.items() if v}
        if d:
            out[part] = d
    return out


@pytest.fixture(scope="module")
def host(request):
    """The lab as a careless playbook finds it: an NM bridge br5 (static address, no
    ports), a kernel bridge br8 made with ip holding ens32, a libvirt network lan5 on br5,
    and a defined guest vm1 with one interface on network default."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = request.getfixturevalue("lab")
    sh(lab, "nmcli", "con", "add", "type", "bridge", "ifname", "br5", "con-name", "br5",
       "bridge.stp", "no", "ipv4.method", "manual", "ipv4.addresses", "192.0.2.5/24",
       "ipv6.method", "disabled")
    sh(lab, "nmcli", "con", "up", "br5")
    sh(lab, "ip", "link", "add", FOREIGN_BRIDGE, "type", "bridge")
    sh(lab, "ip", "link", "set", "dev", FOREIGN_PORT, "master", FOREIGN_BRIDGE)
    sh(lab, "ip", "link", "set", "dev", FOREIGN_BRIDGE, "up")
    sh(lab, *VIRSH, "net-define", "--file", "/dev/stdin",
       input="<network><name>lan5</name><forward mode='bridge'/><bridge name='br5'/></network>")
    sh(lab, *VIRSH, "net-start", "--network", "lan5")
    lab.define_guest("vm1", [f"<interface type='network'><mac address='{VM1_MAC}'/>"
                             "<source network='default'/><model type='virtio'/>"
                             "<rom enabled='no'/></interface>"])
    settled(lab)  # start from a host NetworkManager has settled
    return lab


NB, MV, LN, DI, NI = "nm_bridge", "macvtap_link", "libvirt_net", "domain_iface", "net_info"
INVALID, UNSUPPORTED = "invalid_argument", "not_supported"

# (id, module, options, error_kind, text the message must contain[, flags]); flags:
# "warns in check mode" (a warning naming the text instead of a failure there), "no_log" (run
# as a no_log task: no value of the options may appear anywhere in the result)
WARNS, NO_LOG = "warns in check mode", "no_log"
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
    ("nb-rollback-short", NB, {"name": "br0", "rollback_timeout": 9}, INVALID,
     "option 'rollback_timeout'"),
    ("nb-rollback-long", NB, {"name": "br0", "rollback_timeout": 3601}, INVALID,
     "option 'rollback_timeout'"),
    ("nb-rollback-text", NB, {"name": "br0", "rollback_timeout": "soon"}, INVALID,
     "option 'rollback_timeout'"),
    ("nb-rollback-float", NB, {"name": "br0", "rollback_timeout": 30.5}, INVALID,
     "option 'rollback_timeout'"),
    ("nb-option-port", NB, {"name": "br0", "ports": ["--help"]}, INVALID, "option 'ports'"),
    ("nb-no-log-choice", NB, {"name": "brsecret0", "port_profiles": "s3cr3t-choice"}, INVALID,
     "option 'port_profiles'", NO_LOG),
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
    ("mv-option-parent", MV, {"name": "mvt0", "link": "--help", "mode": "bridge"}, INVALID,
     "option 'link'"),
    # issue 12's own example: a bad choice under no_log echoed the value in msg
    ("mv-no-log-choice", MV, {"name": "mvsecret0", "link": "ens33", "mode": "s3cr3t-mode"},
     INVALID, "option 'mode'", NO_LOG),
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
    ("ln-no-log-choice", LN, {"name": "netsecret0", "forward": "s3cr3t-fwd"}, INVALID,
     "option 'forward'", NO_LOG),
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
    ("di-no-log-choice", DI, {"domain": "vm1", "type": "s3cr3t-type", "source": "br5"}, INVALID,
     "option 'type'", NO_LOG),
    # net_info (read-only: it must refuse before reading anything, too)
    ("ni-gather", NI, {"gather": ["bridges", "vms"]}, INVALID, "option 'gather'"),
    ("ni-gather-empty", NI, {"gather": []}, INVALID, "option 'gather'"),
    ("ni-gather-type", NI, {"gather": {"bridges": True}}, INVALID, "gather"),
    ("ni-uri-empty", NI, {"uri": " "}, INVALID, "option 'uri'"),
    ("ni-uri-nul", NI, {"uri": "qemu:///sys\u0000tem"}, INVALID, "option 'uri'"),
    ("ni-unknown", NI, {"name": "br0"}, INVALID, "name"),
    ("ni-no-log-choice", NI, {"gather": ["bridges", "s3cr3t-part"]}, INVALID, "option 'gather'",
     NO_LOG),
]


def leaves(value) -> list:
    """Every string and number inside an option's value."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    return [value]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_and_changes_nothing(host, case):
    _, module, args, kind, named = case[:5]
    flags = set(case[5:])
    before = snapshot(host)
    for check in (True, False):
        r = run_module(host, module, args, check=check, diff=True, no_log=NO_LOG in flags)
        if check and WARNS in flags:
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
        if NO_LOG in flags:  # masked everywhere (values under 3 characters only when whole)
            text = json.dumps(r, ensure_ascii=False)
            shown = [v for v in leaves(args) if isinstance(v, str) and len(v) >= 3 and v in text]
            assert shown == [], text
        assert snapshot(host) == before, (case[0], check)


def _option_looking(v) -> bool:
    return isinstance(v, str) and v.startswith("-")


def _control(v) -> bool:
    return isinstance(v, str) and any(ord(c) < 0x20 and c != "\0" or c == "\x7f" for c in v)


def _out_of_range_int(row) -> bool:
    return row[3] == INVALID and any(type(v) is int for v in leaves(row[2]))


def _oversized(v) -> bool:
    return isinstance(v, str) and len(v) > (64 << 10)


# Issue 12's classes of bad input: how a row of CASES shows it (None: not a refusal, so
# not a row), and the tests outside the table that cover it.
CLASSES = {
    "option-looking names": (lambda row: any(map(_option_looking, leaves(row[2]))),
                             ["test_option_looking_names_reach_every_tool_as_data",
                              "test_dash_interface_names_are_data"]),
    "non-ASCII names": (None, ["test_non_ascii_names_are_found_again_never_duplicated",
                               "test_without_a_utf8_locale_non_ascii_names_are_refused"]),
    "a port in a bridge made outside NetworkManager": (
        lambda row: row[3] == UNSUPPORTED and FOREIGN_PORT in leaves(row[2]),
        ["test_port_in_a_bridge_made_outside_nm_is_refused_naming_it"]),
    "no_log": (lambda row: NO_LOG in row[5:],
               ["test_no_log_hides_every_option_value_in_every_part_of_the_result"]),
    "bounds: out-of-range integers": (_out_of_range_int, []),
    "bounds: control characters": (lambda row: any(map(_control, leaves(row[2]))), []),
    "bounds: NUL bytes": (lambda row: any(isinstance(v, str) and "\0" in v
                                          for v in leaves(row[2])), []),
    "bounds: oversized values": (lambda row: any(map(_oversized, leaves(row[2])))
                                 or any(len(v) > 1024 for v in row[2].values()
                                        if isinstance(v, list)), []),
    "the virsh batch marker": (None, ["test_names_and_descriptions_holding_batch_markers"]),
    "profiles vanishing during a read": (
        None, ["test_profiles_vanishing_during_a_read_never_fail_a_run"]),
    "daemons down": (None, ["test_daemons_down_fail_clearly"]),
}
CATALOGUE_ROWS = 100  # the table never shrinks unnoticed: change this with the table


def test_the_catalogue_covers_every_module_and_class():
    """No lab needed: every module has rows, every class of issue 12 has rows (where its
    cases are refusals) or lab tests outside the table, and the rows are well formed."""
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assert {c[1] for c in CASES} == {NB, MV, LN, DI, NI}
    kinds = {"invalid_argument", "not_supported", "missing_dependency", "command_failed",
             "verification_failed", "busy", "bug"}
    for c in CASES:
        assert c[3] in kinds and c[4] and set(c[5:]) <= {WARNS, NO_LOG}, c
    for module in (NB, MV, LN, DI, NI):
        assert any(NO_LOG in c[5:] for c in CASES if c[1] == module), f"{module}: no no_log row"
    covered = {}
    for cls, (is_row, tests) in CLASSES.items():
        rows = [c[0] for c in CASES if is_row and is_row(c)]
        for name in tests:
            fn = globals().get(name)
            assert callable(fn) and "host" in fn.__code__.co_varnames[:fn.__code__.co_argcount], \
                f"{cls}: {name} is not a lab test of this file"
        assert rows or (is_row is None and tests), f"class {cls!r} has no case"
        covered[cls] = (len(rows), len(tests))
    print(f"\n{len(CASES)} catalogue rows (each run in check mode and for real); per class "
          f"(rows, tests outside the table): {covered}")
    assert len(CASES) == CATALOGUE_ROWS


# --- names that look like options are data, for every tool ------------------------------


def test_option_looking_names_reach_every_tool_as_data(host):
    """nmcli (profile names), ip (link names), virsh (network and domain names): each
    created under a name that looks like an option, found again by that name, and
    nothing else touched."""
    before = snapshot(host)
    # nmcli: a bridge whose profile is named like an option.
    args = {"name": "br-opt", "conn_name": "--help", "stp": False,
            "ipv4": {"method": "disabled"}, "ipv6": {"method": "disabled"}}
    r = run_module(host, NB, args)
    assert r["changed"] is True and not r.get("failed"), r
    assert delta(before, snapshot(host)) == {"nm": {"+": ["--help"]}, "links": {"+": ["br-opt"]}}
    assert run_module(host, NB, args)["changed"] is False
    assert run_module(host, NB, {"name": "br-opt", "state": "absent"})["changed"] is True
    assert settled(host) == before
    # ip: a macvtap whose name starts with dashes.
    args = {"name": "-x0", "link": "ens33", "mode": "bridge"}
    r = run_module(host, MV, args)
    assert r["changed"] is True and not r.get("failed"), r
    assert json.loads(sh(host, "ip", "-j", "link", "show", "dev", "-x0"))[0]["ifname"] == "-x0"
    assert delta(before, snapshot(host)) == {"links": {"+": ["-x0"]}}
    assert run_module(host, MV, args)["changed"] is False
    assert run_module(host, MV, {"name": "-x0", "state": "absent"})["changed"] is True
    assert settled(host) == before
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
    # vm1 untouched: only the new network and the new guest differ
    assert delta(before, snapshot(host)) == {"nets": {"+": ["--help"]},
                                             "doms": {"+": ["--domain=vm1"]}}
    # clean up
    assert run_module(host, LN, {"name": "--help", "state": "absent"})["changed"] is True
    sh(host, *VIRSH, "undefine", "--domain", "--domain=vm1")
    assert snapshot(host) == before


# --- interface names starting with '-', in every module that takes one ------------------

DASH_NIC, DASH_PEER, DASH_BRIDGE = "-v0", "-v0p", "--help"


@pytest.fixture
def dash_nic(host):
    """A NIC named like an option: a veth pair made with ip ('-v0', its peer '-v0p'), both
    up. Yields the host's snapshot with it; it is gone afterwards."""
    sh(host, "ip", "link", "add", "name", DASH_NIC, "type", "veth", "peer", "name", DASH_PEER)
    for n in (DASH_NIC, DASH_PEER):
        sh(host, "ip", "link", "set", "dev", n, "up")
    try:
        yield settled(host)
    finally:
        host.exec(["ip", "link", "del", "dev", DASH_NIC], check=False)
        host.exec(["ip", "link", "del", "dev", DASH_BRIDGE], check=False)


def as_data(host, r, option: str, start: dict) -> bool:
    """True when the run took the name as data (it succeeded: the caller checks the host);
    False when it refused the name clearly: invalid_argument naming the option, nothing
    changed. Anything else fails the test."""
    if not r.get("failed"):
        return True
    assert r["error_kind"] == INVALID and f"option '{option}'" in r["msg"], r
    assert r["changed"] is False and r["commands"] == [], r
    assert snapshot(host) == start
    return False


def link(host, name: str) -> dict:
    return json.loads(sh(host, "ip", "-j", "-d", "link", "show", "dev", name))[0]


def _dash_nm_bridge(host, start):
    args = {"name": DASH_BRIDGE, "ports": [DASH_NIC], "stp": False,
            "ipv4": {"method": "disabled"}, "ipv6": {"method": "disabled"}}
    if not as_data(host, run_module(host, NB, args), "name", start):
        return
    assert link(host, DASH_NIC)["master"] == DASH_BRIDGE
    assert delta(start, snapshot(host)) == {
        "nm": {"+": [f"bridge-{DASH_BRIDGE}", f"bridge-slave-{DASH_NIC}"]},
        "links": {"+": [DASH_BRIDGE], "~": [DASH_NIC]}}
    assert run_module(host, NB, args)["changed"] is False
    r = run_module(host, NB, {"name": DASH_BRIDGE, "state": "absent"})
    assert r["changed"] is True and not r.get("failed"), r
    assert DASH_BRIDGE not in snapshot(host)["links"]


def _dash_macvtap_link(host, start):
    for persistent in (False, True):
        args = {"name": "--mv", "link": DASH_NIC, "mode": "bridge", "persistent": persistent}
        if not as_data(host, run_module(host, MV, args), "link", start):
            continue
        mv = link(host, "--mv")
        assert mv["linkinfo"]["info_kind"] == "macvtap" and mv["link"] == DASH_NIC, mv
        added = {"links": {"+": ["--mv"]}}
        if persistent:
            added["nm"] = {"+": ["macvlan---mv"]}
        assert delta(start, snapshot(host)) == added
        assert run_module(host, MV, args)["changed"] is False
        r = run_module(host, MV, {"name": "--mv", "state": "absent"})
        assert r["changed"] is True and not r.get("failed"), r
        assert settled(host) == start


def _dash_libvirt_net(host, start):
    sh(host, "ip", "link", "add", "name", DASH_BRIDGE, "type", "bridge")
    start = settled(host)
    for args, option, element in (
            ({"name": "n-dash", "forward": "bridge", "bridge": DASH_BRIDGE}, "bridge",
             f"<bridge name='{DASH_BRIDGE}'/>"),
            ({"name": "n-dash", "forward": "private", "interfaces": [DASH_NIC]}, "interfaces",
             f"<interface dev='{DASH_NIC}'/>")):
        if not as_data(host, run_module(host, LN, args), option, start):
            continue
        assert element in sh(host, *VIRSH, "net-dumpxml", "--inactive", "--network", "n-dash")
        assert delta(start, snapshot(host)) == {"nets": {"+": ["n-dash"]}}
        assert run_module(host, LN, args)["changed"] is False
        assert run_module(host, LN, {"name": "n-dash", "state": "absent"})["changed"] is True
        assert snapshot(host) == start


def _dash_domain_iface(host, start):
    sh(host, "ip", "link", "add", "name", DASH_BRIDGE, "type", "bridge")
    host.define_guest("gdash", [])
    start = settled(host)
    try:
        for mac, args, element in (
                ("52:54:00:00:05:81", {"type": "bridge", "source": DASH_BRIDGE},
                 f"<source bridge='{DASH_BRIDGE}'/>"),
                ("52:54:00:00:05:82", {"type": "direct", "source": DASH_NIC, "mode": "bridge"},
                 f"<source dev='{DASH_NIC}' mode='bridge'/>")):
            args = dict(args, domain="gdash", mac=mac)
            if not as_data(host, run_module(host, DI, args), "source", start):
                continue
            assert element in sh(host, *VIRSH, "dumpxml", "--inactive", "--domain", "gdash")
            assert delta(start, snapshot(host)) == {"doms": {"~": ["gdash"]}}
            assert run_module(host, DI, args)["changed"] is False
            r = run_module(host, DI, {"domain": "gdash", "mac": mac, "state": "absent"})
            assert r["changed"] is True and not r.get("failed"), r
            assert snapshot(host) == start
    finally:
        sh(host, *VIRSH, "undefine", "--domain", "gdash")


@pytest.mark.parametrize("module", [NB, MV, LN, DI])
def test_dash_interface_names_are_data(host, dash_nic, module):
    """A bridge '--help' and a NIC '-v0' in every option that names an interface: taken as
    the names they are (the host holds exactly what was asked, found again on a rerun,
    removed again) or refused clearly, never read as an option by nmcli, ip or virsh."""
    {NB: _dash_nm_bridge, MV: _dash_macvtap_link, LN: _dash_libvirt_net,
     DI: _dash_domain_iface}[module](host, dash_nic)
    host.exec(["ip", "link", "del", "dev", DASH_BRIDGE], check=False)
    assert settled(host) == dash_nic


def test_dash_named_active_bridge_takes_a_settings_change(host, dash_nic):
    """A change to an active bridge named '--help' that NetworkManager applies to the running
    bridge (Device.Reapply over D-Bus: `nmcli dev reapply --help` printed nmcli's help and
    reapplied nothing) reaches the kernel, or the name is refused clearly."""
    args = {"name": DASH_BRIDGE, "stp": False, "ipv4": {"method": "disabled"},
            "ipv6": {"method": "disabled"}}
    try:
        if not as_data(host, run_module(host, NB, args), "name", dash_nic):
            return
        r = run_module(host, NB, dict(args, stp=True))
        assert r["changed"] is True and not r.get("failed"), r
        assert link(host, DASH_BRIDGE)["linkinfo"]["info_data"]["stp_state"] != 0
        assert run_module(host, NB, dict(args, stp=True))["changed"] is False
    finally:
        run_module(host, NB, {"name": DASH_BRIDGE, "state": "absent"})
    assert settled(host) == dash_nic


# --- names outside ASCII -----------------------------------------------------------------


def test_non_ascii_names_are_found_again_never_duplicated(host):
    before = snapshot(host)
    # A bridge made by hand as in the tutorial, named outside ASCII, is adopted.
    sh(host, "nmcli", "con", "add", "type", "bridge", "ifname", "brü", "con-name", "brü",
       "bridge.stp", "no", "ipv4.method", "disabled", "ipv6.method", "disabled")
    try:
        by_hand = settled(host)
        assert delta(before, by_hand) == {"nm": {"+": ["brü"]}, "links": {"+": ["brü"]}}
        args = {"name": "brü", "stp": False, "ipv4": {"method": "disabled"}}
        r = run_module(host, NB, args, check=True, diff=True)
        assert not any(c[:3] == ["nmcli", "con", "add"] for c in r["commands"]), r
        assert r["bridge"]["conn_name"] == "brü"
        assert snapshot(host) == by_hand
        r = run_module(host, NB, args)
        assert not r.get("failed"), r
        assert run_module(host, NB, args)["changed"] is False
        # the profile made by hand, adopted: no second one
        assert "+" not in delta(by_hand, snapshot(host)).get("nm", {})
        # A persistent macvtap outside ASCII: made once, found on every rerun.
        args = {"name": "mvtü", "link": "ens33", "mode": "bridge", "persistent": True}
        r = run_module(host, MV, args)
        assert r["changed"] is True and not r.get("failed"), r
        r = run_module(host, MV, args)
        assert r["changed"] is False and not r.get("failed"), r
        assert delta(before, snapshot(host)) == {"nm": {"+": ["brü", "macvlan-mvtü"]},
                                                 "links": {"+": ["brü", "mvtü"]}}
        # libvirt names too.
        args = {"name": "netü", "forward": "bridge", "bridge": "brü", "state": "present"}
        assert run_module(host, LN, args)["changed"] is True
        assert run_module(host, LN, args)["changed"] is False
        assert delta(before, snapshot(host))["nets"] == {"+": ["netü"]}
        assert run_module(host, LN, {"name": "netü", "state": "absent"})["changed"] is True
    finally:
        run_module(host, MV, {"name": "mvtü", "state": "absent"})
        run_module(host, NB, {"name": "brü", "state": "absent"})
    assert settled(host) == before


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
            assert snapshot(host) == before, module
        # ASCII names keep working without the locale.
        r = run_module(host, LN, {"name": "lan5", "state": "present"})
        assert r["changed"] is False and not r.get("failed"), r
        assert snapshot(host) == before
    finally:
        for p, h in zip(locales, hidden):
            sh(host, "mv", h, p)


# --- a port held by a bridge made outside NetworkManager ----------------------------------


def test_port_in_a_bridge_made_outside_nm_is_refused_naming_it(host):
    before = snapshot(host)
    for check in (True, False):
        r = run_module(host, NB, {"name": "br0", "ports": [FOREIGN_PORT], "stp": False,
                                  "ipv4": {"method": "disabled"}}, check=check)
        assert r["failed"] and r["error_kind"] == "not_supported", r
        assert f"{FOREIGN_PORT} is already a port of bridge '{FOREIGN_BRIDGE}'" in r["msg"], r
        assert f"ip link set dev {FOREIGN_PORT} nomaster" in r["msg"]
        assert snapshot(host) == before, check
    assert link(host, FOREIGN_PORT)["master"] == FOREIGN_BRIDGE


# --- no_log -------------------------------------------------------------------------------


def test_no_log_hides_every_option_value_in_every_part_of_the_result(host):
    secret = "s3cr3t-net"
    args = {"name": secret, "forward": "bridge", "bridge": "br5", "state": "present"}
    before = snapshot(host)
    try:
        for check in (True, False):
            r = run_module(host, LN, args, check=check, diff=True, no_log=True)
            assert r["changed"] is True, r
            text = json.dumps(r)
            assert secret not in text, text
            assert "br5" not in text, text
        made = snapshot(host)
        assert delta(before, made) == {"nets": {"+": [secret]}}
        # A failure's message, cmd and stderr too; the failures change nothing.
        r = run_module(host, DI, {"domain": secret, "type": "bridge", "source": "br5"},
                       no_log=True)
        assert r["failed"] and secret not in json.dumps(r), r
        r = run_module(host, MV, {"name": "mvs0", "link": FOREIGN_PORT, "mode": "bridge",
                                  "mac": "52:54:00:9a:9a:9a"}, no_log=True)
        assert r["failed"] and "52:54:00:9a:9a:9a" not in json.dumps(r), r
        assert FOREIGN_PORT not in r["msg"], r["msg"]
        assert snapshot(host) == made
    finally:
        run_module(host, LN, {"name": secret, "state": "absent"})
    assert snapshot(host) == before


# --- the virsh batch marker ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["m@@kvmnet-section@@", "@@kvmnet-00@@x", "a ; echo @@b"])
def test_names_and_descriptions_holding_batch_markers(host, name):
    # libvirt 9.0 keeps no <description> for networks; a DNS TXT record carries the text.
    xml = (f"<network><name>{name}</name><bridge name='virbrm9'/><dns>"
           "<txt name='m1' value='@@kvmnet-section@@'/>"
           "<txt name='m2' value='@@kvmnet-000102030405060708090a0b0c0d0e0f@@'/></dns>"
           "<ip address='192.168.170.1' prefix='24'/></network>")
    args = {"name": name, "xml": xml, "state": "present"}
    before = snapshot(host)
    r = run_module(host, LN, args)
    assert r["changed"] is True and not r.get("failed"), r
    assert name in sh(host, *VIRSH, "net-list", "--all", "--name").splitlines()
    made = snapshot(host)
    assert delta(before, made) == {"nets": {"+": [name]}}  # defined only (state: present)
    r = run_module(host, LN, args)
    assert r["changed"] is False and not r.get("failed"), r
    assert snapshot(host) == made
    r = run_module(host, LN, {"name": name, "state": "absent"})
    assert r["changed"] is True and not r.get("failed"), r
    assert name not in sh(host, *VIRSH, "net-list", "--all", "--name").splitlines()
    assert snapshot(host) == before
    # A domain named like a marker is found too.
    dom = name.replace(" ", "").replace(";", "")
    host.define_guest(dom, [])
    r = run_module(host, DI, {"domain": dom, "mac": "52:54:00:00:05:78", "type": "bridge",
                              "source": "br5"})
    assert r["changed"] is True and not r.get("failed"), r
    assert delta(before, snapshot(host)) == {"doms": {"+": [dom]}}
    assert "52:54:00:00:05:78" in sh(host, *VIRSH, "dumpxml", "--inactive", "--domain", dom)
    sh(host, *VIRSH, "undefine", "--domain", dom)
    assert snapshot(host) == before


# --- profiles that vanish while a module reads --------------------------------------------


def test_profiles_vanishing_during_a_read_never_fail_a_run(host):
    """NetworkManager makes an in-memory profile for every link configured outside it and
    drops it when the link goes (as after a bridge's profile is deleted). A churn of such
    links makes profiles vanish between nmcli's list call and its property call; every run
    of the module must still succeed, and the host ends as it began."""
    before = snapshot(host)
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
    assert settled(host) == before


# --- faults: daemons down -----------------------------------------------------------------


def _parts(snap: dict, parts) -> dict:
    return {k: snap[k] for k in parts}


def test_daemons_down_fail_clearly(host):
    """NetworkManager stopped, then libvirtd stopped: the modules that need it fail
    (missing_dependency, naming it, changed false, no command), net_info reads what it
    can and warns; nothing changes (what the other daemon and the kernel hold is compared
    while one is down, everything once it is back)."""
    before = snapshot(host)
    without_nm = ("links", "nets", "doms", "kvmnet")
    host._stop("nm")
    try:
        for module, args in ((NB, {"name": "br0", "stp": False}),
                             (MV, {"name": "mvt0", "link": "ens33", "mode": "bridge",
                                   "persistent": True})):
            r = run_module(host, module, args)
            assert r["failed"] and r["error_kind"] == "missing_dependency", r
            assert "NetworkManager" in r["msg"] and r["changed"] is False, r
            assert r["commands"] == [], r
        r = run_module(host, NI, {"gather": ["bridges", "macvtaps"]})
        assert not r.get("failed"), r
        assert any("NetworkManager is not running" in w for w in r["warnings"]), r
        assert snapshot(host, without_nm) == _parts(before, without_nm)
    finally:
        host.restart("nm")
    assert settled(host) == before

    without_libvirt = ("nm", "links", "kvmnet")
    host._stop("libvirt")
    try:
        for module, args in ((LN, {"name": "n1", "forward": "bridge", "bridge": "br5"}),
                             (LN, {"name": "lan5", "state": "absent"}),
                             (DI, {"domain": "vm1", "type": "bridge", "source": "br5"}),
                             (NI, {"gather": ["networks"]})):
            r = run_module(host, module, args)
            assert r["failed"] and r["error_kind"] == "missing_dependency", r
            assert "libvirtd is not reachable" in r["msg"] and r["changed"] is False, r
            assert r["commands"] == [], r
        r = run_module(host, NI, {})
        assert not r.get("failed"), r
        assert any("libvirtd is not reachable" in w for w in r["warnings"]), r
        assert snapshot(host, without_libvirt) == _parts(before, without_libvirt)
    finally:
        host.restart("libvirt")
    assert settled(host) == before
