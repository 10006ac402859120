"""The lab itself (tests/lab, issues 3, 15, 16): a fleet of 3 ssh-enabled lab hosts with real
NetworkManager, libvirtd and sshd; guests on a bridge and on macvtap in two labs at once;
reboot, restart, DHCP, ssh and ansible-playbook from the far side of a lab's LAN at its lease,
ansible-playbook over ssh, lab hosts of the other Debian userlands (bullseye, trixie: their
NetworkManager and libvirt, bridge, guests, LAN ssh, cached roots), and a teardown that leaves
nothing and a machine whose network is untouched.

These labs use their own prefix (KVMNET_LAB_PREFIX semantics: own state dir, namespace names
and controller namespace; KVMNET_TEST_LAB_PREFIX, default kvmtest), so the final down-all only
ever tears down this file's labs."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAB_DIR = ROOT / "tests" / "lab"
LAB_CLI = LAB_DIR / "lab"
sys.path.insert(0, str(LAB_DIR))

import kvmlab  # noqa: E402

PREFIX = os.environ.get("KVMNET_TEST_LAB_PREFIX") or "kvmtest"
FLEET = ["tl1", "tl2", "tl3"]
CLI_ENV = dict(os.environ, KVMNET_LAB_PREFIX=PREFIX)
MUSL = "x86_64-unknown-linux-musl"



def sh(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kw).stdout


def cli(*args, check=True, **kw):
    p = subprocess.run([str(LAB_CLI), *args], capture_output=True, text=True, env=CLI_ENV, **kw)
    if check:
        assert p.returncode == 0, f"lab {args}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def host_network_state() -> dict:
    """The machine's own addresses, routes and firewall, normalised (lifetimes, counters)."""
    def norm(text):
        text = re.sub(r"(valid_lft|preferred_lft) \S+", r"\1 -", text)
        text = re.sub(r"expires \S+", "expires -", text)
        text = re.sub(r"\[\d+:\d+\]", "[-]", text)
        return "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    state = {
        "ip addr": norm(sh(["ip", "addr"])),
        "ip route": norm(sh(["ip", "route", "show", "table", "all"])),
        "ip -6 route": norm(sh(["ip", "-6", "route", "show", "table", "all"])),
        "iptables-save": norm(sh(["iptables-save"])),
    }
    if shutil.which("ip6tables-save"):
        state["ip6tables-save"] = norm(sh(["ip6tables-save"]))
    return state


def links(lab) -> dict:
    return {d["ifname"]: d for d in json.loads(lab.exec(["ip", "-j", "-d", "link"]).stdout)}


def wait_for(what, fn, timeout=30.0, every=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def host_before():
    """Snapshot of the machine's network before any lab of this file exists. Every lab
    fixture depends on it: without root the lab tests skip here, the unit tests still run."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    kvmlab.down_all(PREFIX)  # leftovers of an interrupted earlier run
    return host_network_state()


@pytest.fixture(scope="module")
def fleet(host_before):
    """Three ssh labs brought up at once (the first with a DHCP server on its LAN)."""
    timings = {}

    def up(name):
        t = time.monotonic()
        lab = kvmlab.Lab.up(name, ssh=True, dhcp=(name == FLEET[0]), prefix=PREFIX)
        timings[name] = round(time.monotonic() - t, 2)
        return lab

    t = time.monotonic()
    try:
        with ThreadPoolExecutor(len(FLEET)) as pool:
            labs = list(pool.map(up, FLEET))
        print(f"\nfleet of {len(FLEET)} ssh labs up in {time.monotonic() - t:.2f}s "
              f"(each: {timings})")
        yield labs
    finally:
        t = time.monotonic()
        kvmlab.down_all(PREFIX)
        print(f"\nfleet down in {time.monotonic() - t:.2f}s")


def test_fleet_of_three_ssh_labs(fleet):
    for i, lab in enumerate(fleet):
        assert lab.name == FLEET[i]
        assert lab.address and lab.address.startswith("10.250.")
        st = lab.exec(["nmcli", "-t", "-f", "RUNNING,STATE", "general"]).stdout
        assert st.startswith("running:"), st
        assert "STATE" in lab.exec(["nmcli", "general", "status"]).stdout
        assert "Name" in lab.exec(["virsh", "-c", "qemu:///system", "list"]).stdout
        names = set(links(lab))
        assert {"lo", "ens32", "ens33", "mgmt0"} <= names
        assert "eth0" not in names
        devices = lab.exec(["nmcli", "-t", "-f", "DEVICE,STATE", "device"]).stdout.splitlines()
        assert "ens32:disconnected" in devices and "ens33:disconnected" in devices, devices
        assert "mgmt0:unmanaged" in devices, devices
        assert lab.exec(["hostname"]).stdout.strip() == lab.name
        assert lab.exec(["cat", "/etc/resolv.conf"]).stdout == ""
    addresses = [lab.address for lab in fleet]
    assert len(set(addresses)) == 3


def test_nics_have_carrier_and_ifindex_ranges_differ(fleet):
    for lab in fleet:
        ls = links(lab)
        for nic in ("ens32", "ens33"):
            assert ls[nic]["linkinfo"]["info_kind"] == "veth"
            assert "NO-CARRIER" not in ls[nic]["flags"]
        # links the lab creates (virbr0 from libvirt's default network) get its own range
        lo, hi = lab.index * 256, (lab.index + 1) * 256
        assert lo <= ls["virbr0"]["ifindex"] < hi, (lab.name, ls["virbr0"]["ifindex"])


def test_exec_keeps_cwd_status_and_stdin(fleet, tmp_path):
    lab = fleet[0]
    p = cli("exec", lab.name, "sh", "-c", "pwd; read x; echo got:$x; exit 7", check=False,
            cwd=tmp_path, input="hello\n")
    assert p.returncode == 7, p.stderr
    assert p.stdout.splitlines() == [str(tmp_path), "got:hello"]
    # the lab's /tmp is the machine's: tests hand files to module binaries there
    (tmp_path / "f").write_text("x")
    assert lab.exec(["cat", str(tmp_path / "f")]).stdout == "x"
    with pytest.raises(kvmlab.LabError, match=r"rc 3.*false-ish"):
        lab.exec(["sh", "-c", "echo false-ish; exit 3"])


def test_lab_writes_stay_in_the_lab(fleet):
    lab = fleet[0]
    lab.exec(["sh", "-c", "echo lab-only > /etc/kvmnet-lab-probe; useradd kvmnetprobe"])
    assert not os.path.exists("/etc/kvmnet-lab-probe")
    assert "kvmnetprobe" not in Path("/etc/passwd").read_text()
    assert "kvmnetprobe" not in fleet[1].exec(["cat", "/etc/passwd"]).stdout
    # /proc/sys outside the network namespace is read-only in the lab
    p = lab.exec(["sh", "-c", "echo 1 > /proc/sys/kernel/printk_ratelimit"], check=False)
    assert p.returncode != 0


def test_bridge_made_with_nmcli_carries_a_guest_port(fleet):
    lab = fleet[1]
    lab.exec(["sh", "-ec", textwrap.dedent("""\
        nmcli con add type bridge ifname br0 con-name br0 bridge.stp no \
          ipv4.method manual ipv4.addresses 198.51.100.10/24 ipv6.method disabled
        nmcli con add type bridge-slave ifname ens32 master br0 con-name br0-port
        nmcli con up br0
        nmcli con up br0-port
        """)])
    lab.exec(["virsh", "-c", "qemu:///system", "net-define", "/dev/stdin"],
             input="<network><name>lan</name><forward mode='bridge'/>"
                   "<bridge name='br0'/></network>")
    lab.exec(["virsh", "-c", "qemu:///system", "net-start", "lan"])
    lab.define_guest("gbr", [
        "<interface type='bridge'><source bridge='br0'/><model type='virtio'/>"
        "<rom enabled='no'/></interface>",
        "<interface type='network'><source network='lan'/><model type='virtio'/>"
        "<rom enabled='no'/></interface>",
    ], start=True)
    assert "running" in lab.exec(["virsh", "-c", "qemu:///system", "domstate", "gbr"]).stdout
    iflist = lab.exec(["virsh", "-c", "qemu:///system", "domiflist", "gbr"]).stdout
    vnets = re.findall(r"^\s*(vnet\d+)\s", iflist, re.M)
    assert len(vnets) == 2, iflist
    ls = links(lab)
    for vnet in vnets:
        assert ls[vnet].get("master") == "br0", ls[vnet]
    assert ls["ens32"].get("master") == "br0"
    assert ls["br0"]["linkinfo"]["info_data"]["stp_state"] == 0


def test_reboot_brings_the_bridge_profile_back(fleet):
    lab = fleet[1]
    lab.exec(["ip", "link", "add", "junk0", "type", "veth", "peer", "name", "junk1"])
    t = time.monotonic()
    lab.reboot()
    print(f"\nreboot: {time.monotonic() - t:.2f}s")
    ls = links(lab)
    assert "junk0" not in ls and "junk1" not in ls  # runtime links are gone
    assert {"ens32", "ens33", "mgmt0"} <= set(ls)  # the NICs stay
    # the guest did not survive the reboot (not autostarted)
    assert "shut off" in lab.exec(["virsh", "-c", "qemu:///system", "domstate", "gbr"]).stdout

    def active():
        out = lab.exec(["nmcli", "-t", "-f", "NAME,DEVICE", "con", "show", "--active"]).stdout
        return "br0:br0" in out.splitlines() and "br0-port:ens32" in out.splitlines()
    wait_for("br0 and its port to be active again", active, timeout=20)
    ls = links(lab)
    assert ls["br0"]["linkinfo"]["info_kind"] == "bridge"
    assert ls["ens32"].get("master") == "br0"
    addrs = json.loads(lab.exec(["ip", "-j", "addr", "show", "br0"]).stdout)[0]["addr_info"]
    assert any(a["local"] == "198.51.100.10" for a in addrs)
    # libvirt came back too, with its autostarted default network; sshd was not disturbed
    wait_for("virbr0", lambda: "virbr0" in links(lab), timeout=10)
    out = sh(kvmlab.controller_argv(lab.ssh_argv(["hostname"]), PREFIX))
    assert out.strip() == lab.name


def test_dhcp_profile_on_ens32_gets_a_lease(fleet):
    lab = fleet[0]
    lab.exec(["nmcli", "con", "add", "type", "ethernet", "ifname", "ens32", "con-name", "lan",
              "ipv4.method", "auto", "ipv6.method", "disabled"])
    lab.exec(["nmcli", "con", "up", "lan"], timeout=60)
    addrs = json.loads(lab.exec(["ip", "-j", "addr", "show", "ens32"]).stdout)[0]["addr_info"]
    v4 = [a["local"] for a in addrs if a["family"] == "inet"]
    assert v4 and v4[0].startswith("198.51.100."), addrs
    assert lab.exec(["nmcli", "-g", "DHCP4.OPTION", "con", "show", "lan"]).stdout.strip()


def test_lan_side_ssh_reaches_the_lease_from_the_wire(fleet, tmp_path):
    """ssh to the host at its DHCP lease on ens32 from the far side of its LAN (the wire
    namespace, where the DHCP server is), as a fleet's controller reaches a host; Ansible too."""
    lab = fleet[0]  # --dhcp; ens32 holds a lease since the test above
    lease = lab.lan_address()
    assert lease and lease.startswith("198.51.100.") and lease != "198.51.100.1", lease
    addrs = json.loads(lab.exec(["ip", "-j", "-4", "addr", "show", "ens32"]).stdout)[0]
    assert lease in [a["local"] for a in addrs["addr_info"]]
    # the wire end is the LAN's gateway and DHCP server; from there the lease answers ssh
    wire = cli("wire-exec", lab.name, "ip", "-4", "-o", "addr", "show", "ens32").stdout
    assert "198.51.100.1/24" in wire
    assert sh(lab.wire_argv(lab.ssh_argv(["hostname"], lan=True))).strip() == lab.name
    assert cli("ssh", "--lan", lab.name, "hostname").stdout.strip() == lab.name
    # not from the controller namespace: that one reaches mgmt0 only
    p = subprocess.run(kvmlab.controller_argv(
        ["ssh", *lab.ssh_options(), f"root@{lease}", "true"], PREFIX), capture_output=True)
    assert p.returncode != 0
    inv = cli("inventory", "--lan", lab.name).stdout
    assert re.search(rf"^{lab.name} ansible_host={re.escape(lease)} .*"
                     rf"ansible_ssh_executable={re.escape(lab.wire_ssh)}", inv, re.M), inv
    out = run_play([lab], tmp_path, RAW_PLAY, lan=True)
    assert "ok: [tl1]" in out


def test_macvtap_guests_in_two_labs_at_once(fleet):
    macvtap = ("<interface type='direct'><source dev='ens33' mode='bridge'/>"
               "<model type='virtio'/><rom enabled='no'/></interface>")
    labs = [fleet[0], fleet[2]]
    for lab in labs:
        lab.define_guest("gmv", [macvtap], start=True)
    for lab in labs:
        assert "running" in lab.exec(["virsh", "-c", "qemu:///system", "domstate", "gmv"]).stdout
        taps = [d for d in links(lab).values()
                if d.get("linkinfo", {}).get("info_kind") == "macvtap"]
        assert len(taps) == 1, taps
        ifindex = taps[0]["ifindex"]
        assert lab.index * 256 <= ifindex < (lab.index + 1) * 256
        assert os.path.exists(f"/dev/tap{ifindex}")
        lab.exec(["virsh", "-c", "qemu:///system", "destroy", "gmv"])


def test_default_guest_and_daemon_restarts(fleet):
    lab = fleet[2]
    xml = lab.guest_xml("gdef")
    for part in ("<rom enabled='no'/>", "<acpi/>", "<source network='default'/>"):
        assert part in xml
    p = cli("guest", lab.name, "gdef", "--start")
    assert p.returncode == 0
    virsh = ["virsh", "-c", "qemu:///system"]
    assert "running" in lab.exec([*virsh, "domstate", "gdef"]).stdout
    cli("restart", lab.name, "libvirt")
    assert "running" in lab.exec([*virsh, "domstate", "gdef"]).stdout  # guests survive
    lab.exec(["nmcli", "con", "add", "type", "ethernet", "ifname", "ens33", "con-name", "e33",
              "ipv4.method", "manual", "ipv4.addresses", "198.51.100.33/24",
              "ipv6.method", "disabled"])
    lab.exec(["nmcli", "con", "up", "e33"])
    lab.restart("nm")
    out = lab.exec(["nmcli", "-t", "-f", "NAME,DEVICE", "con", "show", "--active"]).stdout
    assert "e33:ens33" in out.splitlines(), out


def test_cli_status_inventory_and_a_lab_without_ssh(fleet, tmp_path):
    st = json.loads(cli("status", FLEET[0]).stdout)
    assert st["ok"] and st["address"] == fleet[0].address and st["index"] == fleet[0].index
    inv = tmp_path / "hosts"
    cli("inventory", *FLEET, "-o", str(inv))
    text = inv.read_text()
    for lab in fleet:
        assert re.search(rf"^{lab.name} ansible_host={re.escape(lab.address)} ", text, re.M)
    assert cli("inventory", FLEET[1]).stdout.startswith("[kvmnet_labs]\n")
    t = time.monotonic()
    cli("up", "tl4")
    up_time = time.monotonic() - t
    try:
        assert cli("status", "tl4").returncode == 0
        assert cli("list").stdout.split() == [*FLEET, "tl4"]
        assert cli("exec", "tl4", "nm-online", "-s", "-q", "-t", "5").returncode == 0
    finally:
        t = time.monotonic()
        cli("down", "tl4")
        print(f"\nCLI up (no ssh) {up_time:.2f}s, down {time.monotonic() - t:.2f}s")
    assert not os.path.exists(f"/run/netns/{PREFIX}-tl4")
    assert cli("status", "tl4", check=False).returncode == 1


def test_a_failed_up_leaves_nothing(fleet, monkeypatch):
    def broken(self, timeout):
        raise kvmlab.LabError("libvirtd refused (simulated)")
    monkeypatch.setattr(kvmlab.Lab, "_wait_libvirt", broken)
    with pytest.raises(kvmlab.LabError, match="simulated"):
        kvmlab.Lab.up("tl5", ssh=True, prefix=PREFIX)
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"{PREFIX}-tl5")]
    assert not os.path.exists(f"/run/{PREFIX}-lab/tl5")
    procs = [kvmlab._read_proc(int(d)) for d in os.listdir("/proc") if d.isdigit()]
    assert not [p for p in procs if p and p.state != "Z"
                and f"/run/{PREFIX}-lab/tl5/" in " ".join(p.cmdline)]
    # the other labs' management links are still there, the failed lab's is gone
    ctl = sh(["ip", "-n", f"{PREFIX}-ctl", "-o", "link"])
    assert sorted(re.findall(r"^\d+: (lab\d+)@", ctl, re.M)) == \
        sorted(f"lab{lab.index}" for lab in fleet)
    shutil.rmtree(f"/tmp/kvmnet-lab-failed-{PREFIX}-tl5", ignore_errors=True)


def ansible_playbook() -> str:
    venv = ROOT / ".venv" / "bin" / "ansible-playbook"
    found = str(venv) if venv.exists() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("ansible-playbook not found (run tests/setup.sh)")
    return found


RAW_PLAY = textwrap.dedent("""\
    - hosts: kvmnet_labs
      gather_facts: false
      tasks:
        - raw: hostname; nmcli -t -f RUNNING general
          register: r
          changed_when: false
        - assert:
            that: r.stdout_lines == [inventory_hostname, "running"]
    """)


def run_play(fleet, tmp_path, play: str, env_extra=None, lan: bool = False) -> str:
    """ansible-playbook over ssh to the labs: from the controller namespace, or with ``lan``
    from each lab's wire namespace at its LAN address (ansible-playbook itself stays here)."""
    inv = tmp_path / "hosts.ini"
    kvmlab.write_inventory(fleet, str(inv), lan=lan)
    (tmp_path / "play.yml").write_text(play)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_RETRY_FILES_ENABLED="False", **(env_extra or {}))
    argv = [ansible_playbook(), "-i", str(inv), str(tmp_path / "play.yml")]
    if not lan:
        argv = kvmlab.controller_argv(argv, PREFIX)
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, f"ansible-playbook rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    for lab in fleet:
        assert re.search(rf"^{lab.name}\s+: ok=\d+ .*unreachable=0\s+failed=0", p.stdout, re.M), \
            p.stdout
    return p.stdout


def test_ansible_reaches_all_labs_over_ssh(fleet, tmp_path):
    out = run_play(fleet, tmp_path, RAW_PLAY)
    assert out.count("ok: [") >= 6


def kvmnet_test_binary() -> str:
    path = os.environ.get("KVMNET_TEST_MODULE")
    if path:
        return path
    if not (ROOT / "tests" / "test_module" / "Cargo.toml").exists():
        pytest.skip("no test-only module: KVMNET_TEST_MODULE unset and no tests/test_module crate")
    if not shutil.which("cargo"):
        pytest.skip("cargo not found: cannot build the kvmnet_test module")
    subprocess.run(["cargo", "build", "-q", "--release", "--target", MUSL, "-p", "kvmnet_test"],
                   cwd=ROOT, check=True)
    return str(ROOT / "target" / MUSL / "release" / "kvmnet_test")


def test_ansible_runs_a_binary_module_in_every_lab(fleet, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    shutil.copy(kvmnet_test_binary(), library / "kvmnet_test")
    out_dir = Path(f"/tmp/kvmnet-labtest-{os.getpid()}")
    out_dir.mkdir(exist_ok=True)
    try:
        run_play(fleet, tmp_path, textwrap.dedent(f"""\
            - hosts: kvmnet_labs
              gather_facts: false
              tasks:
                - kvmnet_test:
                    path: "{out_dir}/{{{{ inventory_hostname }}}}"
                    content: "{{{{ inventory_hostname }}}}"
                  register: r
                - assert:
                    that: r.changed
            """), {"ANSIBLE_LIBRARY": str(library)})
        for lab in fleet:
            assert (out_dir / lab.name).read_text().strip() == lab.name
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# userlands other than the machine's: Debian 11 and 13 roots (built once, cached)

# what each suite's mirror serves (checked 2026-12-02): NetworkManager and libvirt upstream
# versions, by prefix
USERLAND_VERSIONS = {"bullseye": ("11", "1.30.", "7.0."), "trixie": ("13", "1.52.", "11.3.")}
USERLANDS = sorted(USERLAND_VERSIONS)


@pytest.fixture(scope="module")
def userland_labs(host_before):
    """A --ssh --dhcp lab of each other userland, brought up at once (a missing root is built
    first: about a minute each)."""
    timings = {}

    def up(userland):
        t = time.monotonic()
        lab = kvmlab.Lab.up(f"tu{userland[:4]}", ssh=True, dhcp=True, prefix=PREFIX,
                            userland=userland)
        timings[userland] = (round(time.monotonic() - t, 2),
                             "root built" if lab.info["root_built"] else "cached root")
        return lab

    labs = {}
    try:
        with ThreadPoolExecutor(len(USERLANDS)) as pool:
            for lab in pool.map(up, USERLANDS):
                labs[lab.info["userland"]] = lab
        print(f"\nuserland labs up: {timings}")
        yield labs
    finally:
        for name in [f"tu{u[:4]}" for u in USERLANDS]:
            kvmlab.Lab(name, PREFIX).down()


@pytest.mark.parametrize("userland", USERLANDS)
def test_userland_runs_its_own_suite(userland_labs, userland, tmp_path):
    lab = userland_labs[userland]
    release, nm, libvirt = USERLAND_VERSIONS[userland]
    info = lab.info
    assert info["userland"] == userland and info["root"].startswith(kvmlab.ROOTS_DIR)
    osr = lab.exec(["cat", "/etc/os-release"]).stdout
    assert f'VERSION_ID="{release}"' in osr and f"VERSION_CODENAME={userland}" in osr, osr
    # the tools themselves, and what the lab reports (Debian package versions)
    assert lab.exec(["NetworkManager", "--version"]).stdout.startswith(nm)
    assert lab.exec(["nmcli", "--version"]).stdout.split()[-1].startswith(nm)
    assert re.search(rf"\blibvirt\)? {re.escape(libvirt)}",
                     lab.exec(["libvirtd", "--version"]).stdout)
    assert info["versions"]["networkmanager"].startswith(nm)
    assert info["versions"]["libvirt"].startswith(libvirt)
    assert lab.exec(["qemu-system-x86_64", "--version"]).stdout.startswith("QEMU emulator")
    st = json.loads(cli("status", lab.name).stdout)
    assert st["ok"] and st["userland"] == userland and st["versions"] == info["versions"]
    # daemons as on the machine's userland: NM manages the NICs, libvirt's default network runs
    devices = lab.exec(["nmcli", "-t", "-f", "DEVICE,STATE", "device"]).stdout.splitlines()
    assert "ens32:disconnected" in devices and "mgmt0:unmanaged" in devices, devices
    nets = lab.exec(["virsh", "-c", "qemu:///system", "net-list", "--name"]).stdout.split()
    assert nets == ["default"]
    # ssh from the controller namespace; the machine's /tmp and /work are the lab's too
    out = sh(kvmlab.controller_argv(lab.ssh_argv(["hostname"]), PREFIX))
    assert out.strip() == lab.name
    (tmp_path / "f").write_text("from the machine")
    assert lab.exec(["cat", str(tmp_path / "f")]).stdout == "from the machine"
    assert lab.exec(["pwd"]).stdout.strip() == os.getcwd()
    # sudo for an unprivileged user (become)
    lab.exec(["sh", "-ec", "useradd -m kvmu; echo 'kvmu ALL=(ALL) NOPASSWD: ALL' "
              "> /etc/sudoers.d/kvmu; chmod 0440 /etc/sudoers.d/kvmu"])
    assert lab.exec(["runuser", "-u", "kvmu", "--", "sudo", "-n", "id", "-u"]).stdout == "0\n"
    # writes stay in the lab: the cached root is unchanged
    assert not os.path.exists(f"{info['root']}/etc/sudoers.d/kvmu")
    assert "kvmu" not in Path(f"{info['root']}/etc/passwd").read_text()


@pytest.mark.parametrize("userland", USERLANDS)
def test_userland_lan_side_ssh_at_the_lease(userland_labs, userland):
    lab = userland_labs[userland]
    lab.exec(["nmcli", "con", "add", "type", "ethernet", "ifname", "ens32", "con-name", "lan",
              "ipv4.method", "auto", "ipv6.method", "disabled"])
    lab.exec(["nmcli", "con", "up", "lan"], timeout=60)
    lease = lab.lan_address()
    assert lease and lease.startswith("198.51.100."), lease
    assert sh(lab.wire_argv(lab.ssh_argv(["hostname"], lan=True))).strip() == lab.name


def test_userland_ansible_over_both_lans(userland_labs, tmp_path):
    """Both labs' LANs are 198.51.100.0/24, each in its own wire namespace: one play reaches
    every host at its lease through that host's wire-ssh."""
    labs = [userland_labs[u] for u in USERLANDS]
    assert all(lab.lan_address() for lab in labs)
    run_play(labs, tmp_path, RAW_PLAY, lan=True)


@pytest.mark.parametrize("userland", USERLANDS)
def test_userland_bridge_carries_guests(userland_labs, userland):
    """An nmcli bridge with a static address over ens32 activates, a guest starts on it (and
    one on a macvtap of ens33, whose /dev/tapN lies in the lab's ifindex range), and the host
    answers ssh at the bridge's address from the LAN side."""
    lab = userland_labs[userland]
    lab.exec(["nmcli", "con", "delete", "lan"])
    lab.exec(["sh", "-ec", textwrap.dedent("""\
        nmcli con add type bridge ifname br0 con-name br0 bridge.stp no \
          ipv4.method manual ipv4.addresses 198.51.100.10/24 ipv6.method disabled
        nmcli con add type bridge-slave ifname ens32 master br0 con-name br0-port
        nmcli con up br0
        nmcli con up br0-port
        """)])
    active = lab.exec(["nmcli", "-t", "-f", "NAME,DEVICE", "con", "show", "--active"]).stdout
    assert {"br0:br0", "br0-port:ens32"} <= set(active.splitlines()), active
    lab.define_guest("gbr", [
        "<interface type='bridge'><source bridge='br0'/><model type='virtio'/>"
        "<rom enabled='no'/></interface>",
        "<interface type='direct'><source dev='ens33' mode='bridge'/><model type='virtio'/>"
        "<rom enabled='no'/></interface>",
    ], start=True)
    virsh = ["virsh", "-c", "qemu:///system"]
    assert "running" in lab.exec([*virsh, "domstate", "gbr"]).stdout
    ls = links(lab)
    vnets = [n for n, d in ls.items() if d.get("master") == "br0" and n.startswith("vnet")]
    assert len(vnets) == 1 and ls["ens32"].get("master") == "br0", ls
    taps = [d for d in ls.values() if d.get("linkinfo", {}).get("info_kind") == "macvtap"]
    assert len(taps) == 1
    assert lab.index * 256 <= taps[0]["ifindex"] < (lab.index + 1) * 256
    assert os.path.exists(f"/dev/tap{taps[0]['ifindex']}")
    assert lab.lan_address() == "198.51.100.10"
    assert sh(lab.wire_argv(lab.ssh_argv(["hostname"], lan=True))).strip() == lab.name
    lab.exec([*virsh, "destroy", "gbr"])


@pytest.mark.parametrize("userland", USERLANDS)
def test_userland_second_up_reuses_the_cached_root(userland_labs, userland):
    first = userland_labs[userland]
    meta = kvmlab._read_meta(os.path.dirname(first.info["root"]))
    t = time.monotonic()
    lab = kvmlab.Lab.up(f"tv{userland[:4]}", prefix=PREFIX, userland=userland)
    try:
        up_time = time.monotonic() - t
        assert lab.info["root"] == first.info["root"] and not lab.info["root_built"]
        assert kvmlab._read_meta(os.path.dirname(lab.info["root"]))["built_at"] == \
            meta["built_at"]
        assert lab.exec(["nmcli", "-t", "-f", "RUNNING", "general"]).stdout == "running\n"
        # pristine: nothing the first lab wrote is here
        assert "kvmu" not in lab.exec(["cat", "/etc/passwd"]).stdout
        profiles = lab.exec(["nmcli", "-t", "-f", "NAME", "con", "show"]).stdout.split()
        assert not {"br0", "br0-port", "lan"} & set(profiles), profiles
        t = time.monotonic()
    finally:
        lab.down()
    print(f"\n{userland}: second lab up (cached root, no ssh) {up_time:.2f}s, "
          f"down {time.monotonic() - t:.2f}s")


@pytest.mark.parametrize("userland", USERLANDS)
def test_userland_down_leaves_nothing(userland_labs, userland):
    lab = userland_labs[userland]
    holder = lab.holder()
    pid_ns = kvmlab._ino(f"/proc/{holder}/ns/pid")
    net_ns = {kvmlab._ino(f"/run/netns/{n}") for n in (lab.netns, lab.wire_netns)}
    root, index = lab.info["root"], lab.index
    t = time.monotonic()
    lab.down()
    print(f"\n{userland}: down {time.monotonic() - t:.2f}s")
    assert not [n for n in os.listdir("/run/netns") if n in (lab.netns, lab.wire_netns)]
    assert not kvmlab._procs_in_ns("pid", {pid_ns})
    assert not kvmlab._procs_in_ns("net", net_ns)
    assert not os.path.exists(lab.state_dir)
    assert not os.path.islink(f"{kvmlab.INDEX_DIR}/{index}") or \
        os.readlink(f"{kvmlab.INDEX_DIR}/{index}") != lab.state_dir
    mounts = Path("/proc/self/mountinfo").read_text()
    assert lab.state_dir not in mounts and root not in mounts
    assert not os.path.exists(f"{root}/etc/NetworkManager/system-connections/br0.nmconnection")
    assert os.path.isfile(f"{root}/usr/sbin/NetworkManager")  # the cache stays for the next


def root_cache_key(monkeypatch, userland: str, **changes) -> str:
    """The cache key kvmlab.ensure_root gives ``userland``'s root (the KEY of
    ROOTS_DIR/SUITE-KEY) with kvmlab's module attributes in ``changes`` set first: read from
    the directory ensure_root looks up. Nothing is built or read from the machine's cache."""
    looked_up = []
    with monkeypatch.context() as m:
        m.setattr(kvmlab, "host_userland", lambda: "bookworm")
        m.setattr(kvmlab, "debian_mirrors",
                  lambda: ("http://deb.example.org/debian", "http://deb.example.org/security"))
        m.setattr(kvmlab, "ROOTS_DIR", "/nonexistent/kvmnet-roots")
        m.setattr(kvmlab, "_read_meta", lambda rdir: looked_up.append(rdir) or {"root": rdir})
        m.setattr(kvmlab, "_build_root", lambda *a: pytest.fail("ensure_root tried to build"))
        for attr, value in changes.items():
            m.setattr(kvmlab, attr, value)
        kvmlab.ensure_root(userland)
    assert len(set(looked_up)) == 1, looked_up
    name = os.path.basename(looked_up[0])
    assert name.startswith(f"{userland}-"), name
    return name[len(userland) + 1:]


def test_root_cache_key_follows_the_recipe_only(monkeypatch):
    """Unit test (no lab, no root): the userland root's cache key changes when anything that
    decides the root's content changes (package list, recipe number, hooks, dpkg options,
    sources) and stays the same otherwise."""
    key = {u: root_cache_key(monkeypatch, u) for u in ("bullseye", "trixie")}
    assert len(set(key.values())) == 2 and all(re.fullmatch(r"[0-9a-f]{12}", k)
                                              for k in key.values()), key
    # the same inputs give the same key; so do changes outside the recipe
    assert root_cache_key(monkeypatch, "bullseye") == key["bullseye"]
    for unrelated in ({"PACKAGES": kvmlab.PACKAGES + ["tcpdump"]},  # the bookworm lab's apt list
                      {"NM_CONF": kvmlab.NM_CONF + "# x\n"}, {"DEFAULT_PREFIX": "other"},
                      {"ROOT_PACKAGES_ABSENT": {"bullseye": {"libvirt-daemon-driver-network"},
                                                "trixie": {"no-such-package"}}}):
        for u in key:
            assert root_cache_key(monkeypatch, u, **unrelated) == key[u], (u, unrelated)
    # the package list
    for packages in (kvmlab.ROOT_PACKAGES + ["tcpdump"], kvmlab.ROOT_PACKAGES[:-1]):
        for u in key:
            assert root_cache_key(monkeypatch, u, ROOT_PACKAGES=packages) != key[u], packages
    assert root_cache_key(monkeypatch, "trixie", ROOT_PACKAGES_ABSENT={
        "trixie": {"libvirt-daemon-driver-network"}}) != key["trixie"]
    # the recipe: its version number, the hooks, dpkg's options
    for changed in ({"ROOT_RECIPE": kvmlab.ROOT_RECIPE + 1},
                    {"ROOT_CUSTOMIZE_HOOK": kvmlab.ROOT_CUSTOMIZE_HOOK + "true\n"},
                    {"ROOT_DPKG_OPTS": kvmlab.ROOT_DPKG_OPTS[:-1]}):
        for u in key:
            assert root_cache_key(monkeypatch, u, **changed) != key[u], (u, changed)
    # the merged-/usr hook is bullseye's alone
    hook = {"MERGED_USR_HOOK": kvmlab.MERGED_USR_HOOK + " true"}
    assert root_cache_key(monkeypatch, "bullseye", **hook) != key["bullseye"]
    assert root_cache_key(monkeypatch, "trixie", **hook) == key["trixie"]
    # the sources: another mirror
    assert root_cache_key(monkeypatch, "trixie", debian_mirrors=lambda: (
        "http://mirror.example.net/debian", "http://deb.example.org/security")) != key["trixie"]


def test_down_all_leaves_nothing_and_the_host_untouched(fleet, host_before):
    """Runs last: tears the fleet down and checks for leftovers of any kind."""
    holders = [lab.holder() for lab in fleet]
    pid_ns = {kvmlab._ino(f"/proc/{h}/ns/pid") for h in holders}
    net_ns = {kvmlab._ino(f"/run/netns/{n}") for lab in fleet
              for n in (lab.netns, lab.wire_netns)} | {kvmlab._ino(f"/run/netns/{PREFIX}-ctl")}
    t = time.monotonic()
    cli("down-all")
    print(f"\ndown-all of {len(fleet)} labs: {time.monotonic() - t:.2f}s")
    assert not [n for n in os.listdir("/run/netns") if n.startswith(f"{PREFIX}-")]
    assert not kvmlab._procs_in_ns("pid", pid_ns)
    assert not kvmlab._procs_in_ns("net", net_ns)
    assert not any(kvmlab._alive(h) for h in holders)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert f"/run/{PREFIX}-lab" not in mounts and f"/run/netns/{PREFIX}-" not in mounts
    assert not os.path.exists(f"/run/{PREFIX}-lab")
    slots = [os.readlink(f"{kvmlab.INDEX_DIR}/{s}") for s in os.listdir(kvmlab.INDEX_DIR)
             if s.isdigit()]
    assert not [s for s in slots if s.startswith(f"/run/{PREFIX}-lab/")]
    assert host_network_state() == host_before
