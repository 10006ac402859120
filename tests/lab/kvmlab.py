"""Lab KVM hosts: real NetworkManager, libvirtd and sshd in isolated namespaces.

Python 3 standard library only; runs as root. The command-line front end is ``tests/lab/lab``;
README.md next to this file explains the design. In short, a lab named NAME is:

- network namespace ``<prefix>-NAME`` holding NICs ``ens32``/``ens33`` (veths whose peers, with the
  same names, live in the wire namespace ``<prefix>-NAME-w``, so they have carrier) and, with ssh, a
  management NIC ``mgmt0`` (NetworkManager leaves it unmanaged) whose peer ``labN`` lives in the
  controller namespace ``<prefix>-ctl`` (10.250.N.1/30 there, 10.250.N.2/30 in the lab);
- a holder process, PID 1 of the lab's own PID namespace (plus mount, UTS and IPC namespaces), which
  only reaps children: every lab process lives in that PID namespace, so killing the holder ends
  the lab;
- a private mount tree: tmpfs-backed copy-on-write overlays over /etc /var /usr /home /opt /srv;
  a fresh /root (Debian's default dotfiles; the machine's ~/.cargo ~/.rustup ~/.pyenv ~/.local
  read-only); a private /run (the state dir bind-mounted back at its own path); a sysfs of the
  lab's netns mounted read-only with /sys/devices read-write on top; /proc/sys read-only except
  /proc/sys/net; /tmp and /work (and everything else) are the machine's own;
- dbus-daemon (the lab's system bus), NetworkManager, libvirtd, optionally sshd and a DHCP server
  (dnsmasq on the wire end of ens32).

State lives in ``/run/<prefix>-lab/NAME/``. The prefix (default ``kvmnet``, env
``KVMNET_LAB_PREFIX``) separates independent fleets on one machine; lab indexes (ifindex ranges,
/30 subnets) are allocated machine-wide in ``/run/kvmnet-lab-index/`` so that fleets of
different prefixes never collide.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

DEFAULT_PREFIX = "kvmnet"
INDEX_DIR = "/run/kvmnet-lab-index"
MAX_INDEX = 250
IFINDEX_STRIDE = 256
LAN_NET = "198.51.100"  # the wire-side LAN of ens32 with --dhcp (TEST-NET-2, lab namespaces only)
MGMT_NET = "10.250"  # 10.250.N.0/30 between the controller namespace and lab N (namespaces only)
NICS = ("ens32", "ens33")
MGMT_IF = "mgmt0"
DAEMON_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
}
PACKAGES = [
    "network-manager", "dbus", "iproute2", "libvirt-daemon", "libvirt-daemon-driver-qemu",
    "libvirt-clients", "libvirt-daemon-config-network", "qemu-system-x86", "dnsmasq-base",
    "iptables", "util-linux", "passwd", "openssh-server", "openssh-client", "python3",
    "python3-libvirt", "python3-lxml", "sudo",
]
OVERLAY_DIRS = ("etc", "var", "usr", "home", "opt", "srv")

# Userlands: the Debian suite a lab host runs. The machine's own suite (bookworm here) runs from
# the machine's files (overlays over /etc /var /usr ...); any other is a root built once with
# mmdebstrap from the mirror the machine's apt uses and cached under ROOTS_DIR.
USERLANDS = ("bullseye", "bookworm", "trixie")
ROOTS_DIR = "/var/cache/kvmnet-lab/roots"
ROOT_RECIPE = 1  # bump when the recipe changes in a way the cache key below does not see
ROOT_PACKAGES = [
    "network-manager", "dbus", "iproute2", "libvirt-daemon", "libvirt-daemon-driver-qemu",
    "libvirt-daemon-driver-network", "libvirt-clients", "libvirt-daemon-config-network",
    "qemu-system-x86", "dnsmasq-base", "iptables", "openssh-server", "sudo", "passwd", "python3",
    "util-linux", "mount",
]
# packages a suite does not have, because another package of the list holds them there
ROOT_PACKAGES_ABSENT = {"bullseye": {"libvirt-daemon-driver-network"}}  # in libvirt-daemon
# suites whose packages do not merge /usr themselves: make the symlinks as debootstrap (and so a
# Debian 11 installation) does
ROOT_MERGED_USR_LINKS = {"bullseye"}
MERGED_USR_HOOK = 'for d in bin sbin lib lib32 lib64 libx32; do ln -s "usr/$d" "$1/$d"; ' \
    'mkdir -p "$1/usr/$d"; done'
# after the packages: what minbase leaves out that a lab host needs (libvirt's users; no shared
# machine-id or ssh host keys: each lab host makes its own), and no apt lists
ROOT_CUSTOMIZE_HOOK = r"""set -eu
chroot "$1" sh -eu -c '
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt >/dev/null || groupadd -r libvirt
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt \
  -s /usr/sbin/nologin -c "Libvirt Qemu" libvirt-qemu
getent group libvirt-dnsmasq >/dev/null || groupadd -r libvirt-dnsmasq
getent passwd libvirt-dnsmasq >/dev/null || useradd -r -g libvirt-dnsmasq \
  -d /var/lib/libvirt/dnsmasq -s /usr/sbin/nologin -c "Libvirt Dnsmasq" libvirt-dnsmasq
'
rm -f "$1/etc/machine-id" "$1/var/lib/dbus/machine-id" "$1"/etc/ssh/ssh_host_*
rm -rf "$1"/var/lib/apt/lists/*
"""
ROOT_DPKG_OPTS = ["path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                  "path-include=/usr/share/doc/*/copyright"]
VERSION_PACKAGES = {"networkmanager": "network-manager", "libvirt": "libvirt-daemon",
                    "qemu": "qemu-system-x86"}
# the checkout this file belongs to: a userland's root shows it at the same path
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
ROOT_TOOL_DIRS = (".cargo", ".rustup", ".pyenv", ".local")  # visible read-only in the lab's /root
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
VIRSH = ["virsh", "-q", "-c", "qemu:///system"]

HOLDER_CODE = r"""# kvmnet lab holder: PID 1 of a lab's PID namespace; reaps orphans; TERM/INT end it.
import os, signal, sys
def reap(*_):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
signal.signal(signal.SIGCHLD, reap)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
signal.signal(signal.SIGINT, lambda *_: os._exit(0))
signal.signal(signal.SIGHUP, signal.SIG_IGN)
open(sys.argv[1], "w").close()  # ready: the lab's mounts may change under us from now on
while True:
    signal.pause()
    reap()
"""

NM_CONF = """\
[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=root-only

[keyfile]
unmanaged-devices=interface-name:mgmt0

[connectivity]
enabled=false

[logging]
level=INFO
"""

QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""

LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
"""

DBUS_CONF = """\
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <!-- The lab's system bus: the standard policy, no activation (no service dirs, no helper). -->
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
</busconfig>
"""

# STATE/wire-ssh: ssh from the far side of one lab's LAN (Ansible's ssh_executable, see
# inventory_text(lan=True)); every lab's LAN is 198.51.100.0/24 in its own wire namespace
WIRE_SSH = """\
#!/bin/sh
# ssh from the far side of lab {name}'s LAN: its wire namespace (the ens32 peer, where the
# DHCP server answers). Made by tests/lab/kvmlab.py; Ansible's ssh_executable for this lab.
exec nsenter --net={netns} -- ssh "$@"
"""

DEFAULT_IFACE = (
    "<interface type='network'><source network='default'/><model type='virtio'/>"
    "<rom enabled='no'/></interface>"
)

# Runs inside the lab (all its namespaces) right after the holder started. $1 state dir, $2 name,
# $3 the userland's cached root ("" for the machine's own userland), $4 the checkout (CHECKOUT).
SETUP_SH = r"""
set -eu
S=$1; NAME=$2; ROOT=${3:-}; CHECKOUT=${4:-}; L=$S/lab
hostname "$NAME"
# This mount namespace is a private copy of the machine's: drop its copies of the netns mounts,
# else it would keep other labs' namespaces (and their veths) alive after they are deleted.
if grep -q ' /run/netns' /proc/self/mountinfo; then umount -R -l /run/netns; fi
mount -t tmpfs -o mode=0755 kvmnet-lab "$L"
if [ -n "$ROOT" ]; then
  # another Debian suite: a copy-on-write overlay over its cached root becomes the lab's / (N),
  # with the machine's /dev (devtmpfs: /dev/kvm, /dev/net/tun, macvtaps' /dev/tapN), /tmp and
  # /work inside (tests hand binaries and args files over those paths)
  N=$L/rootfs
  mkdir -p "$L/upper/rootfs" "$L/work/rootfs" "$N"
  mount -t overlay -o "lowerdir=$ROOT,upperdir=$L/upper/rootfs,workdir=$L/work/rootfs" \
    kvmnet-root "$N"
  # and, as in a lab of the machine's userland, its own overlay over each directory software
  # writes to (tests look for /usr being an overlay before they change anything there)
  for d in OVERLAY_DIRS; do
    [ -d "$ROOT/$d" ] || continue
    mkdir -p "$L/upper/$d" "$L/work/$d"
    mount -t overlay -o "lowerdir=$ROOT/$d,upperdir=$L/upper/$d,workdir=$L/work/$d" \
      "kvmnet-$d" "$N/$d"
  done
  mount --rbind /dev "$N/dev"
  for d in tmp work; do
    [ -d "/$d" ] || continue
    mkdir -p "$N/$d"
    mount --rbind "/$d" "$N/$d"
  done
  # and the checkout the lab was started from, at its own path, wherever it lives (CI clones
  # it outside /work): tests run there and hand its files to the lab by their paths
  case "$CHECKOUT" in
    ""|/tmp|/tmp/*|/work|/work/*|/root|/root/*) ;;
    *) mkdir -p "$N$CHECKOUT"; mount --rbind "$CHECKOUT" "$N$CHECKOUT" ;;
  esac
else
  # the machine's own userland: copy-on-write overlays over the directories software writes to
  N=
  for d in OVERLAY_DIRS; do
    [ -d "/$d" ] || continue
    mkdir -p "$L/upper/$d" "$L/work/$d"
    mount -t overlay -o "lowerdir=/$d,upperdir=$L/upper/$d,workdir=$L/work/$d" "kvmnet-$d" "/$d"
  done
fi
mount -t proc -o nosuid,nodev,noexec proc "$N/proc"
mount --bind "$N/proc/sys" "$N/proc/sys"
mount --bind "$N/proc/sys/net" "$N/proc/sys/net"
mount -o remount,bind,ro "$N/proc/sys"
# NetworkManager keeps devices unmanaged (waiting for udev) while /sys is writable.
mount -t sysfs -o nosuid,nodev,noexec sysfs "$N/sys"
mount --bind "$N/sys/devices" "$N/sys/devices"
mount -o remount,bind,ro,nosuid,nodev,noexec "$N/sys"
# root's home is a fresh one, as on a new Debian host (not the machine's dotfiles and keys),
# but the machine's toolchains there stay usable (read-only) by their absolute paths
mkdir -p -m 0700 "$L/root"
for f in bashrc profile; do
  src="$N/usr/share/base-files/dot.$f"
  if [ -f "$src" ]; then cp "$src" "$L/root/.$f"; fi
done
for d in TOOL_DIRS; do
  [ -d "/root/$d" ] || continue
  mkdir -p "$L/root/$d"
  mount --rbind "/root/$d" "$L/root/$d"
  mount -o remount,bind,ro "$L/root/$d"
done
# a checkout under /root (a fresh machine's root clones it there) stays visible at its path
case "$CHECKOUT" in
  /root/?*) mkdir -p "$L$CHECKOUT"; mount --rbind "$CHECKOUT" "$L$CHECKOUT" ;;
esac
mount --rbind "$L/root" "$N/root"
mkdir -p "$L/run/${S#/run/}"
mount --bind "$S" "$L/run/${S#/run/}"
mount --rbind "$L/run" "$N/run"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$N/dev/shm"
if [ -n "$ROOT" ]; then
  # the userland becomes the root of this mount namespace (the holder moves with it); the
  # machine's tree is detached from the lab
  cd "$N"
  pivot_root . .
  umount -l .
  cd /
  # one machine-id per lab host (a minbase root has none)
  grep -qE '^[0-9a-f]{32}$' /etc/machine-id 2>/dev/null ||
    tr -d '-' < /proc/sys/kernel/random/uuid > /etc/machine-id
fi
mkdir -p /run/lock /run/dbus /run/sshd /run/user
chmod 1777 /run/lock
rm -f /etc/resolv.conf /etc/hostname /etc/hosts
: > /etc/resolv.conf
echo "$NAME" > /etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n' "$NAME" > /etc/hosts
rm -rf /etc/NetworkManager/system-connections /etc/NetworkManager/conf.d /var/lib/NetworkManager
mkdir -p /etc/NetworkManager/system-connections /etc/NetworkManager/conf.d /var/lib/NetworkManager
chmod 0700 /etc/NetworkManager/system-connections
rm -f /etc/NetworkManager/NetworkManager.conf
cp "$S/files/NetworkManager.conf" /etc/NetworkManager/NetworkManager.conf
rm -rf /etc/libvirt/qemu /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
mkdir -p /etc/libvirt/qemu/networks/autostart /var/lib/libvirt/qemu /var/lib/libvirt/network \
  /var/lib/libvirt/dnsmasq /var/lib/libvirt/images /var/cache/libvirt/qemu /var/log/libvirt/qemu
if [ -f /usr/share/libvirt/networks/default.xml ]; then
  cp /usr/share/libvirt/networks/default.xml /etc/libvirt/qemu/networks/default.xml
  ln -s ../default.xml /etc/libvirt/qemu/networks/autostart/default.xml
fi
rm -f /etc/libvirt/qemu.conf /etc/libvirt/libvirtd.conf
cp "$S/files/qemu.conf" /etc/libvirt/qemu.conf
cp "$S/files/libvirtd.conf" /etc/libvirt/libvirtd.conf
if [ -d "$S/files/qemu-capabilities" ]; then
  cp -a "$S/files/qemu-capabilities" /var/cache/libvirt/qemu/capabilities
fi
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt >/dev/null || groupadd -r libvirt
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt \
  -s /usr/sbin/nologin -c "Libvirt Qemu" libvirt-qemu
""".replace("OVERLAY_DIRS", " ".join(OVERLAY_DIRS)).replace("TOOL_DIRS", " ".join(ROOT_TOOL_DIRS))

# Runs inside the lab for "reboot", after NetworkManager, libvirtd and their processes are gone.
REBOOT_SH = r"""
set -u
keep=" lo ens32 ens33 mgmt0 "
for dev in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
  case "$keep" in *" $dev "*) ;; *) ip link del "$dev" 2>/dev/null ;; esac
done
for dev in ens32 ens33; do
  ip addr flush dev "$dev"
  ip link set "$dev" down
done
empty='*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
'
printf '%s' "$empty" | iptables-restore 2>/dev/null
printf '%s' "$empty" | ip6tables-restore 2>/dev/null
echo 0 > /proc/sys/net/ipv4/ip_forward
rm -rf /run/NetworkManager /run/libvirt
exit 0
"""


class LabError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# small helpers


def _prefix(prefix: str | None) -> str:
    p = prefix or os.environ.get("KVMNET_LAB_PREFIX") or DEFAULT_PREFIX
    if not PREFIX_RE.match(p):
        raise LabError(f"bad lab prefix {p!r}: want {PREFIX_RE.pattern}")
    return p


def root_dir(prefix: str | None = None) -> str:
    return f"/run/{_prefix(prefix)}-lab"


def ctl_netns(prefix: str | None = None) -> str:
    return f"{_prefix(prefix)}-ctl"


def _run(argv, check=True, input=None, timeout=120, env=None, stdout=subprocess.PIPE,
         stderr=subprocess.PIPE):
    try:
        cp = subprocess.run(
            argv, input=input, text=True, timeout=timeout, env=env, stdout=stdout, stderr=stderr,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {shlex.join(map(str, argv))}") from e
    if check and cp.returncode != 0:
        raise LabError(
            f"command failed (rc {cp.returncode}): {shlex.join(map(str, argv))}\n"
            f"stdout: {cp.stdout}\nstderr: {cp.stderr}"
        )
    return cp


def _netns_path(ns: str) -> str:
    return f"/run/netns/{ns}"


def _netns_exists(ns: str) -> bool:
    return os.path.exists(_netns_path(ns))


def _ino(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


@contextlib.contextmanager
def _global_lock():
    os.makedirs(INDEX_DIR, exist_ok=True)
    fd = os.open(os.path.join(INDEX_DIR, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class _Proc:
    __slots__ = ("pid", "lpid", "ppid", "comm", "cmdline", "state")

    def __init__(self, pid, lpid, ppid, comm, cmdline, state):
        self.pid, self.lpid, self.ppid = pid, lpid, ppid
        self.comm, self.cmdline, self.state = comm, cmdline, state

    def __repr__(self):
        return f"{self.comm}({self.pid})"


def _read_proc(pid: int) -> _Proc | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except OSError:
        return None
    fields = {}
    for line in status.splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    nspid = fields.get("NSpid", str(pid)).split()
    return _Proc(
        pid, int(nspid[-1]), int(fields.get("PPid", "0")), fields.get("Name", ""),
        [c.decode(errors="replace") for c in cmdline if c], fields.get("State", "?")[:1],
    )


def _procs_in_ns(kind: str, inodes: set) -> list:
    """Live processes whose namespace of this kind ("net", "pid") is one of ``inodes``."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and _ino(f"/proc/{d}/ns/{kind}") in inodes:
            p = _read_proc(int(d))
            if p and p.state != "Z":
                out.append(p)
    return out


def _alive(pid: int) -> bool:
    p = _read_proc(pid)
    return p is not None and p.state != "Z"


def _wait_gone(pids, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _until_ok(run, timeout: float) -> subprocess.CompletedProcess:
    """Run a command (``run()``) until it exits 0 or ``timeout`` passed; the last result."""
    deadline = time.monotonic() + timeout
    while (cp := run()).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return cp


def _kill(pids, sig=signal.SIGKILL):
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kvm_usable() -> bool:
    """True when /dev/kvm opens and answers KVM_GET_API_VERSION (12)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, 0xAE00, 0) == 12  # KVM_GET_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


_packages_checked = False


def _install_debs(packages) -> None:
    """apt-get install those of ``packages`` that are not installed on the machine."""
    cp = _run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages], check=False)
    have = {line.split()[0] for line in cp.stdout.splitlines() if line.split()[1:2] == ["ii"]}
    missing = [p for p in packages if p not in have]
    if missing:
        with _global_lock():
            if not os.path.exists("/usr/sbin/policy-rc.d"):
                # nothing may start on install: the lab runs its own daemons, the machine none
                with open("/usr/sbin/policy-rc.d", "w") as f:
                    f.write("#!/bin/sh\nexit 101\n")
                os.chmod("/usr/sbin/policy-rc.d", 0o755)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            print(f"kvmlab: installing {' '.join(missing)}", file=sys.stderr)
            _run(["apt-get", "update", "-q"], env=env, timeout=900)
            _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                 env=env, timeout=1800)


def ensure_packages() -> None:
    """Install the Debian packages the lab needs when any is missing (checked once per process)."""
    global _packages_checked
    if not _packages_checked:
        _install_debs(PACKAGES)
        _packages_checked = True


# ---------------------------------------------------------------------------------------------
# userlands: cached roots of other Debian suites


def host_userland() -> str:
    """The machine's own Debian suite (VERSION_CODENAME of /etc/os-release)."""
    with open("/etc/os-release") as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k == "VERSION_CODENAME" and v:
                return v.strip('"')
    raise LabError("cannot tell this machine's Debian suite (no VERSION_CODENAME in "
                   "/etc/os-release)")


def _userland(userland: str | None) -> str:
    u = userland or os.environ.get("KVMNET_LAB_USERLAND") or host_userland()
    if u not in USERLANDS and u != host_userland():
        raise LabError(f"unknown userland {u!r}: want one of {', '.join(USERLANDS)}")
    return u


def debian_mirrors() -> tuple:
    """(archive URI, security URI) of the Debian mirror this machine's apt uses: the sources
    that serve its own suite and its -security suite (one-line and deb822 formats)."""
    host = host_userland()
    entries = []  # (uris, suites)
    d = "/etc/apt/sources.list.d"
    paths = ["/etc/apt/sources.list"]
    if os.path.isdir(d):
        paths += sorted(f"{d}/{n}" for n in os.listdir(d))
    for path in paths:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".list") or path == "/etc/apt/sources.list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append(([words[1]], [words[2]]))
        elif path.endswith(".sources"):
            for block in re.split(r"\n\s*\n", text):
                fields = {}
                for line in block.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    k, _, v = line.partition(":")
                    fields[k.strip().lower()] = v.split()
                if ("deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]
                        and fields.get("uris") and fields.get("suites")):
                    entries.append((fields["uris"], fields["suites"]))
    archive = next((u[0] for u, suites in entries if host in suites), None)
    security = next((u[0] for u, suites in entries if f"{host}-security" in suites), None)
    return (archive or "http://deb.debian.org/debian").rstrip("/"), \
        (security or "http://deb.debian.org/debian-security").rstrip("/")


def _root_recipe(userland: str) -> dict:
    """Everything that decides what a userland's root holds; its hash names the cached root."""
    archive, security = debian_mirrors()
    absent = ROOT_PACKAGES_ABSENT.get(userland, set())
    return {
        "suite": userland,
        "recipe": ROOT_RECIPE,
        "sources": [f"deb {archive} {userland} main", f"deb {archive} {userland}-updates main",
                    f"deb {security} {userland}-security main"],
        "packages": [p for p in ROOT_PACKAGES if p not in absent],
        "setup_hook": MERGED_USR_HOOK if userland in ROOT_MERGED_USR_LINKS else None,
        "customize_hook": ROOT_CUSTOMIZE_HOOK,
        "dpkg_opts": ROOT_DPKG_OPTS,
    }


def package_versions(root: str | None = None) -> dict:
    """Debian package versions of NetworkManager, libvirt and QEMU in a root (None: the machine)."""
    admin = [f"--admindir={root}/var/lib/dpkg"] if root else []
    cp = _run(["dpkg-query", *admin, "-W", "-f=${Package} ${Version}\n",
               *VERSION_PACKAGES.values()], check=False)
    got = dict(line.split(" ", 1) for line in cp.stdout.splitlines() if " " in line)
    return {k: got.get(pkg) for k, pkg in VERSION_PACKAGES.items()}


@contextlib.contextmanager
def _flock(path: str):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_meta(root_dir: str) -> dict | None:
    try:
        with open(f"{root_dir}/meta.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _rm_tree(path: str) -> None:
    """Remove a directory tree without ever crossing into another file system."""
    if os.path.lexists(path):
        _run(["rm", "-rf", "--one-file-system", "--", path], check=False, timeout=600)


def ensure_root(userland: str | None = None) -> dict | None:
    """The cached root of ``userland`` (built now when missing): its meta (``root`` the tree,
    ``versions``, ``build_seconds``, ...; ``built`` says whether this call built it). None for
    the machine's own userland, which needs no root."""
    userland = _userland(userland)
    if userland == host_userland():
        return None
    recipe = _root_recipe(userland)
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    rdir = f"{ROOTS_DIR}/{userland}-{key}"
    built = False
    meta = _read_meta(rdir)
    if meta is None:
        os.makedirs(ROOTS_DIR, exist_ok=True)
        with _flock(f"{ROOTS_DIR}/.lock-{userland}"):  # two labs starting at once: one build
            meta = _read_meta(rdir)
            if meta is None:
                meta = _build_root(userland, recipe, rdir)
                built = True
    with contextlib.suppress(OSError):
        os.utime(f"{rdir}/meta.json")  # last use: roots of older recipes unused for long go
    return dict(meta, built=built)


def _build_root(userland: str, recipe: dict, rdir: str) -> dict:
    """mmdebstrap the root into a scratch dir, then rename it into place: a half-built root is
    never used. Caller holds the userland's lock."""
    _install_debs(["mmdebstrap"])
    for stale in os.listdir(ROOTS_DIR):  # scratch dirs of builds that died
        if stale.startswith(f".build-{userland}-"):
            _rm_tree(f"{ROOTS_DIR}/{stale}")
    tmp = f"{ROOTS_DIR}/.build-{os.path.basename(rdir)}.{os.getpid()}"
    os.makedirs(tmp)
    argv = ["unshare", "--mount", "--propagation", "private", "--",  # its mounts die with it
            "mmdebstrap", "--variant=minbase", "--include=" + ",".join(recipe["packages"]),
            *[f"--dpkgopt={o}" for o in recipe["dpkg_opts"]],
            f"--customize-hook={recipe['customize_hook']}"]
    if recipe["setup_hook"]:
        argv.append(f"--setup-hook={recipe['setup_hook']}")
    argv += [userland, f"{tmp}/root", *recipe["sources"]]
    print(f"kvmlab: building the {userland} userland (once; cached in {rdir})", file=sys.stderr)
    t = time.monotonic()
    try:
        with open(f"{tmp}/build.log", "w") as log:
            cp = _run(argv, check=False, timeout=1800, stdout=log, stderr=subprocess.STDOUT,
                      env=dict(DAEMON_ENV, DEBIAN_FRONTEND="noninteractive"))
        if cp.returncode != 0:
            keep = f"/tmp/kvmnet-lab-root-{userland}.log"
            shutil.copyfile(f"{tmp}/build.log", keep)
            raise LabError(f"building the {userland} userland failed (mmdebstrap rc "
                           f"{cp.returncode}); its log is in {keep}")
        meta = {
            "userland": userland, "root": f"{rdir}/root", "recipe": recipe,
            "versions": package_versions(f"{tmp}/root"),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - t, 1),
        }
        du = _run(["du", "-sm", f"{tmp}/root"], check=False).stdout.split()
        meta["size_mb"] = int(du[0]) if du else None
        with open(f"{tmp}/meta.json", "w") as f:
            json.dump(meta, f, indent=1)
        os.rename(tmp, rdir)
    except BaseException:
        _rm_tree(tmp)
        raise
    print(f"kvmlab: {userland} userland built in {meta['build_seconds']}s", file=sys.stderr)
    _prune_roots(userland, keep=rdir)
    return meta


def _roots_in_use() -> set:
    """Roots of every lab that is up on this machine (any prefix), from their info.json."""
    used = set()
    with contextlib.suppress(OSError):
        for slot in os.listdir(INDEX_DIR):
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(INDEX_DIR, slot, "info.json")) as f:
                    root = json.load(f).get("root")
                if root:
                    used.add(os.path.dirname(root))
    return used


def _prune_roots(userland: str, keep: str, idle: float = 3600) -> None:
    """Remove this userland's roots of other recipes that no lab uses and none used for an hour."""
    used = _roots_in_use()
    for d in os.listdir(ROOTS_DIR):
        path = f"{ROOTS_DIR}/{d}"
        if not d.startswith(f"{userland}-") or path == keep or path in used:
            continue
        with contextlib.suppress(OSError):
            if time.time() - os.stat(f"{path}/meta.json").st_mtime < idle:
                continue
        _rm_tree(path)


# ---------------------------------------------------------------------------------------------
# the lab


class Lab:
    """One lab host. Get one with ``Lab.up(name, ...)`` or ``Lab.get(name)`` (already up)."""

    def __init__(self, name: str, prefix: str | None = None):
        if not NAME_RE.match(name) or name.endswith("-w") or name == "ctl":
            raise LabError(f"bad lab name {name!r}: want {NAME_RE.pattern}, not ending in -w, "
                           "not ctl")
        self.name = name
        self.prefix = _prefix(prefix)
        self.state_dir = f"{root_dir(self.prefix)}/{name}"
        self.netns = f"{self.prefix}-{name}"
        self.wire_netns = f"{self.prefix}-{name}-w"
        self._info = None
        self._holder = None

    def __repr__(self):
        return f"Lab({self.name!r}, prefix={self.prefix!r})"

    # -- state -------------------------------------------------------------------------------

    @property
    def info(self) -> dict:
        if self._info is None:
            try:
                with open(f"{self.state_dir}/info.json") as f:
                    self._info = json.load(f)
            except FileNotFoundError:
                raise LabError(f"lab {self.name} is not up (no {self.state_dir})") from None
        return self._info

    def _save_info(self, **kv):
        info = dict(self._info or {}, **kv)
        tmp = f"{self.state_dir}/info.json.tmp"
        with open(tmp, "w") as f:
            json.dump(info, f, indent=1)
        os.replace(tmp, f"{self.state_dir}/info.json")
        self._info = info

    @property
    def index(self) -> int:
        return self.info["index"]

    @property
    def address(self) -> str | None:
        return self.info.get("address")

    @property
    def key_file(self) -> str | None:
        return f"{self.state_dir}/id_ed25519" if self.info.get("ssh") else None

    @classmethod
    def get(cls, name: str, prefix: str | None = None) -> "Lab":
        """The lab NAME that is already up."""
        lab = cls(name, prefix)
        lab.holder()
        return lab

    def holder(self) -> int:
        """PID (machine view) of the lab's holder, PID 1 of its PID namespace."""
        if self._holder and self._is_holder(self._holder):
            return self._holder
        pid = self.info.get("holder")
        if pid and self._is_holder(pid):
            self._holder = pid
            return pid
        raise LabError(f"lab {self.name}: its holder process is gone (lab broken: down it)")

    def _is_holder(self, pid: int) -> bool:
        """Is pid this lab's holder: a PID namespace's init running our holder.py, or (labs
        whose state dir is gone) one in our network namespace?"""
        p = _read_proc(pid)
        if not p or p.state == "Z" or p.lpid != 1 or p.pid == 1:
            return False
        net = _ino(_netns_path(self.netns))
        return (f"{self.state_dir}/files/holder.py" in p.cmdline
                or bool(net and _ino(f"/proc/{pid}/ns/net") == net))

    def _find_holder(self) -> int | None:
        net = _ino(_netns_path(self.netns))
        if not net:
            return None
        for p in _procs_in_ns("net", {net}):
            if p.lpid == 1 and p.pid != 1:
                return p.pid
        return None

    def processes(self) -> list:
        """Every live process of the lab (its PID namespace); ``.pid`` is the machine's PID."""
        return _procs_in_ns("pid", {_ino(f"/proc/{self.holder()}/ns/pid")})

    # -- entering ----------------------------------------------------------------------------

    def enter_argv(self, argv, net: str | None = None, wd: str | None = None) -> list:
        """argv that runs ``argv`` inside the lab (all its namespaces; ``net``: a netns file).

        ``wd``: the working directory as a path the machine sees (nsenter opens it before it
        enters); default the lab's /."""
        return ["nsenter", "-t", str(self.holder()), "--mount", "--uts", "--ipc", "--pid",
                f"--net={net}" if net else "--net", *([f"--wd={wd}"] if wd else []),
                "--", *argv]

    def exec_argv(self, argv, cwd: str | None = None) -> list:
        """argv that runs ``argv`` in the lab in the working directory ``cwd`` (default: ours)."""
        if cwd is None:
            try:
                cwd = os.getcwd()
            except FileNotFoundError:
                cwd = "/"
        # the directory as the lab sees it (its own mounts: a userland's root, its /work), so
        # that getcwd() works in there
        wd = f"/proc/{self.holder()}/root{cwd}"
        return self.enter_argv(list(argv), wd=wd if os.path.isdir(wd) else None)

    def exec(self, argv, check: bool = True, input: str | None = None, timeout: float = 120,
             env: dict | None = None) -> subprocess.CompletedProcess:
        """Run argv in the lab (its D-Bus is the system bus); text stdout/stderr captured."""
        full_env = dict(os.environ if env is None else env)
        full_env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        cp = _run(self.exec_argv(argv), check=False, input=input, timeout=timeout, env=full_env)
        cp.args = list(argv)
        if check and cp.returncode != 0:
            raise LabError(
                f"lab {self.name}: command failed (rc {cp.returncode}): "
                f"{shlex.join(map(str, argv))}\nstdout: {cp.stdout}\nstderr: {cp.stderr}"
            )
        return cp

    def ssh_options(self) -> list:
        return ["-i", self.key_file, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]

    def ssh_argv(self, argv, lan: bool = False) -> list:
        """ssh argv that runs argv in the lab; run it through ``controller_argv`` (or, with
        ``lan``, which addresses the host's LAN address, through ``wire_argv``)."""
        if not self.address:
            raise LabError(f"lab {self.name} has no ssh")
        host = self._lan_address_or_fail() if lan else self.address
        return ["ssh", *self.ssh_options(), f"root@{host}", "--", shlex.join(argv)]

    # -- the LAN side ------------------------------------------------------------------------

    def wire_argv(self, argv) -> list:
        """Wrap argv so it runs in the lab's wire namespace: the far side of its LAN, where the
        ens32 peers live and, with ``dhcp``, the DHCP server (198.51.100.1/24, also the LAN's
        gateway). Same filesystem, working directory and environment; only the network differs."""
        if not _netns_exists(self.wire_netns):
            raise LabError(f"lab {self.name} is not up (no {self.wire_netns})")
        return ["nsenter", f"--net={_netns_path(self.wire_netns)}", "--", *argv]

    @property
    def wire_ssh(self) -> str:
        """An ssh for Ansible (``ansible_ssh_executable``) running in this lab's wire namespace."""
        return f"{self.state_dir}/wire-ssh"

    def lan_address(self) -> str | None:
        """The host's current IPv4 address on its LAN: what ens32 carries or, when ens32 is a
        port of a bridge (br0), what that bridge carries; a DHCP lease first. None if none."""
        cp = _run(["ip", "-n", self.netns, "-j", "addr", "show"], check=False, timeout=10)
        if cp.returncode != 0:
            raise LabError(f"lab {self.name} is not up: {cp.stderr.strip()}")
        ifaces = {i.get("ifname"): i for i in json.loads(cp.stdout or "[]")}
        nic = ifaces.get(NICS[0], {})
        for dev in (nic.get("master"), NICS[0]):
            addrs = [a for a in ifaces.get(dev, {}).get("addr_info", [])
                     if a.get("family") == "inet" and a.get("scope") == "global"]
            addrs.sort(key=lambda a: not a.get("dynamic"))
            if addrs:
                return addrs[0]["local"]
        return None

    def _lan_address_or_fail(self) -> str:
        addr = self.lan_address()
        if not addr:
            raise LabError(f"lab {self.name}: no IPv4 address on ens32 or a bridge over it yet")
        return addr

    # -- up ----------------------------------------------------------------------------------

    @classmethod
    def up(cls, name: str, ssh: bool = False, dhcp: bool = False, prefix: str | None = None,
           timeout: float = 90, userland: str | None = None) -> "Lab":
        """Start lab NAME; return when NetworkManager, libvirtd (and sshd) are ready.

        ``userland``: bullseye, bookworm or trixie (default: env KVMNET_LAB_USERLAND, else the
        machine's own suite); another suite than the machine's runs from a cached root, built
        first when missing (minutes)."""
        ensure_packages()
        userland = _userland(userland)
        root = ensure_root(userland)
        lab = cls(name, prefix)
        lab._create(ssh, dhcp, userland, root)
        try:
            lab._boot(ssh, dhcp, timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                lab._keep_logs()
            lab.down()
            raise
        return lab

    def _create(self, ssh, dhcp, userland, root):
        """Claim the name (state dir) and a machine-wide lab index."""
        with _global_lock():
            if os.path.exists(self.state_dir) or _netns_exists(self.netns):
                raise LabError(f"lab {self.name} exists already (lab down {self.name} first)")
            used = set()
            for slot in os.listdir(INDEX_DIR):
                if slot.isdigit():
                    if os.path.isdir(os.path.join(INDEX_DIR, slot)):  # symlink to a state dir
                        used.add(int(slot))
                    else:
                        os.unlink(os.path.join(INDEX_DIR, slot))
            index = next((i for i in range(1, MAX_INDEX + 1) if i not in used), None)
            if index is None:
                raise LabError(f"no free lab index (at most {MAX_INDEX} labs)")
            os.makedirs(self.state_dir, mode=0o700)
            os.symlink(self.state_dir, os.path.join(INDEX_DIR, str(index)))
            self._save_info(name=self.name, prefix=self.prefix, index=index, ssh=ssh, dhcp=dhcp,
                            address=f"{MGMT_NET}.{index}.2" if ssh else None, holder=None,
                            userland=userland, root=root["root"] if root else None,
                            root_built=bool(root and root["built"]),
                            versions=root["versions"] if root else package_versions())

    def _boot(self, ssh, dhcp, timeout):
        s, idx = self.state_dir, self.index
        for d in ("log", "files", "lab", "cp"):
            os.makedirs(f"{s}/{d}", exist_ok=True)
        for fname, text in (("NetworkManager.conf", NM_CONF), ("qemu.conf", QEMU_CONF),
                            ("libvirtd.conf", LIBVIRTD_CONF), ("dbus.conf", DBUS_CONF),
                            ("holder.py", HOLDER_CODE)):
            with open(f"{s}/files/{fname}", "w") as f:
                f.write(text)
        caps = self._caps_dir()
        if os.path.isdir(caps):
            shutil.copytree(caps, f"{s}/files/qemu-capabilities", symlinks=True)
        with open(f"{s}/wire-ssh", "w") as f:
            f.write(WIRE_SSH.format(name=self.name, netns=_netns_path(self.wire_netns)))
        os.chmod(f"{s}/wire-ssh", 0o755)

        with _global_lock():
            # under the lock: concurrent first "ip netns add"s race making /run/netns a mount
            _run(["ip", "netns", "add", self.netns])
            _run(["ip", "netns", "add", self.wire_netns])
            ctl = ctl_netns(self.prefix)
            if ssh and not _netns_exists(ctl):
                _run(["ip", "netns", "add", ctl])
                _run(["ip", "-n", ctl, "link", "set", "lo", "up"])

        # networks: lab NICs with carrier (peers on the wire), the management link
        batch = ["link set lo up"]
        for nic in NICS:
            batch += [f"link add {nic} type veth peer name {nic} netns {self.netns}",
                      f"link set {nic} up"]
        if dhcp:
            batch.append(f"addr add {LAN_NET}.1/24 dev ens32")
        _run(["ip", "-n", self.wire_netns, "-batch", "-"], input="\n".join(batch) + "\n")
        lab_batch = ["link set lo up"]
        if ssh:
            ctl = ctl_netns(self.prefix)
            _run(["ip", "-n", ctl, "-batch", "-"], input="\n".join([
                f"link add lab{idx} type veth peer name {MGMT_IF} netns {self.netns}",
                f"addr add {MGMT_NET}.{idx}.1/30 dev lab{idx}",
                f"link set lab{idx} up",
            ]) + "\n")
            lab_batch += [f"addr add {MGMT_NET}.{idx}.2/30 dev {MGMT_IF}",
                          f"link set {MGMT_IF} up"]
        _run(["ip", "-n", self.netns, "-batch", "-"], input="\n".join(lab_batch) + "\n")
        self._advance_ifindex(idx * IFINDEX_STRIDE)

        # the holder: PID 1 of the lab's PID namespace, in its own mount/UTS/IPC namespaces
        with open(f"{s}/log/holder.log", "ab") as log:
            _run(["setsid", "-f", "nsenter", f"--net={_netns_path(self.netns)}", "--",
                  "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork",
                  "--propagation", "private", "--",
                  "/usr/bin/python3", "-I", f"{s}/files/holder.py", f"{s}/holder.ready"],
                 env=DAEMON_ENV, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not os.path.exists(f"{s}/holder.ready") or (holder := self._find_holder()) is None:
            if time.monotonic() > deadline:
                raise LabError(f"lab {self.name}: holder did not start (see {s}/log/holder.log)")
            time.sleep(0.01)
        self._holder = holder
        self._save_info(holder=holder)

        _run(self.enter_argv(["sh", "-c", SETUP_SH, "setup", s, self.name,
                              self.info.get("root") or "", CHECKOUT]), env=DAEMON_ENV)

        self._spawn("dbus", ["dbus-daemon", "--nofork", "--nopidfile", "--nosyslog",
                             f"--config-file={s}/files/dbus.conf"])
        if ssh:
            self._setup_ssh()
            self._spawn("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", f"{s}/sshd_config"])
        if dhcp:
            self._spawn("dnsmasq", self._dnsmasq_argv(), net=_netns_path(self.wire_netns))
        self._wait_file("/run/dbus/system_bus_socket", 10)
        self._start_daemons(("nm", "libvirt"), timeout)
        if ssh:
            self._wait_ssh(timeout)

    def _advance_ifindex(self, target: int):
        """Move the lab netns' ifindex counter to ``target`` (throw-away links, deleted at once).

        macvtap character devices are /dev/tap<ifindex> in the machine's shared /dev, and every
        namespace counts ifindexes on its own: giving lab N the range N*256.. keeps two labs'
        macvtaps from ever wanting the same /dev/tapN node."""
        ns = self.netns
        for kind in ("ifb", "veth"):
            probe = _run(["ip", "-n", ns, "link", "add", "kvprobe", "type", kind], check=False)
            if probe.returncode == 0:
                break
        else:
            raise LabError(f"cannot create throw-away links in {ns}: {probe.stderr}")
        shown = _run(["ip", "-n", ns, "-j", "link", "show", "kvprobe"]).stdout
        cur = json.loads(shown)[0]["ifindex"]
        _run(["ip", "-n", ns, "link", "del", "kvprobe"])
        per = 1 if kind == "ifb" else 2
        n = max(0, (target - cur - 1) // per)
        if n:
            lines = [f"link add kvtmp{i} group 250 type {kind}" for i in range(n)]
            _run(["ip", "-n", ns, "-batch", "-"], input="\n".join(lines) + "\n")
            _run(["ip", "-n", ns, "link", "del", "group", "250"])

    def _spawn(self, tag: str, argv, net: str | None = None):
        """Start a daemon in the lab, detached (it becomes a child of the holder); log/TAG.log."""
        with open(f"{self.state_dir}/log/{tag}.log", "ab") as log:
            _run(self.enter_argv(["setsid", "-f", *argv], net=net), env=DAEMON_ENV,
                 stdout=log, stderr=log)

    def _wait_file(self, path: str, timeout: float):
        deadline = time.monotonic() + timeout
        full = f"/proc/{self.holder()}/root{path}"
        while not os.path.exists(full):
            if time.monotonic() > deadline:
                raise LabError(f"lab {self.name}: {path} did not appear in {timeout}s")
            time.sleep(0.01)

    # daemons: how to start each, which processes are it, when it is ready
    _DAEMONS = {"nm": ("NetworkManager", ["NetworkManager", "--debug", "--log-level=INFO"]),
                "libvirt": ("libvirtd", ["libvirtd"])}

    def _daemon(self, daemon: str):
        try:
            return self._DAEMONS[daemon]
        except KeyError:
            raise LabError(f"unknown daemon {daemon!r}: want nm or libvirt") from None

    def _start_daemons(self, daemons, timeout: float):
        for d in daemons:
            self._spawn(d, self._daemon(d)[1])
        nm_wait = None
        if "nm" in daemons:
            nm_wait = subprocess.Popen(
                self.enter_argv(["nm-online", "-s", "-q", "-t", str(int(timeout))]),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=DAEMON_ENV, text=True)
        try:
            if "libvirt" in daemons:
                self._wait_libvirt(timeout)
            if nm_wait:
                out, _ = nm_wait.communicate(timeout=timeout + 5)
        finally:
            if nm_wait and nm_wait.poll() is None:  # libvirtd failed: do not wait for NM too
                nm_wait.kill()
                nm_wait.wait()
        if nm_wait and nm_wait.returncode != 0:
            raise LabError(f"lab {self.name}: NetworkManager not ready (nm-online rc "
                           f"{nm_wait.returncode}: {out.strip()}; see {self.state_dir}/log/nm.log)")

    def _wait_libvirt(self, timeout: float):
        self._wait_file("/run/libvirt/libvirt-sock", timeout)
        cp = _until_ok(lambda: self.exec([*VIRSH, "list"], check=False, env=DAEMON_ENV), timeout)
        if cp.returncode != 0:
            raise LabError(f"lab {self.name}: libvirtd not ready: {cp.stderr.strip()} "
                           f"(see {self.state_dir}/log/libvirt.log)")

    def _setup_ssh(self):
        s = self.state_dir
        for key in ("id_ed25519", "ssh_host_ed25519_key"):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kvmnet-lab-{self.name}",
                  "-f", f"{s}/{key}"])
        shutil.copyfile(f"{s}/id_ed25519.pub", f"{s}/authorized_keys")
        # every address: mgmt0 for the controller namespace, and the LAN side (ens32 or the bridge
        # that takes it over) for a controller in the wire namespace, as a fleet's controller
        with open(f"{s}/sshd_config", "w") as f:
            f.write(f"""\
ListenAddress 0.0.0.0:22
ListenAddress [::]:22
HostKey {s}/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile {s}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PidFile none
MaxStartups 100:30:200
MaxSessions 100
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
""")

    def _wait_ssh(self, timeout: float):
        argv = controller_argv(self.ssh_argv(["true"]), self.prefix)
        cp = _until_ok(lambda: _run(argv, check=False), timeout)
        if cp.returncode != 0:
            raise LabError(f"lab {self.name}: ssh login failed: {cp.stderr.strip()} "
                           f"(see {self.state_dir}/log/sshd.log)")

    def _dnsmasq_argv(self):
        return ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--port=0", "--interface=ens32", "--bind-interfaces",
                f"--dhcp-range={LAN_NET}.100,{LAN_NET}.199,255.255.255.0,1h",
                f"--dhcp-option=option:router,{LAN_NET}.1", "--dhcp-authoritative",
                f"--dhcp-leasefile={self.state_dir}/dnsmasq.leases", "--pid-file",
                "--user=root", "--group=root", "--log-facility=-", "--log-dhcp"]

    def _save_caps(self, holder: int):
        """Keep libvirt's QEMU capability cache (made on first use, ~1 s) machine-wide, so later
        labs skip the probe; libvirt itself re-probes when the cache no longer fits QEMU."""
        caps = self._caps_dir()
        src = f"/proc/{holder}/root/var/cache/libvirt/qemu/capabilities"

        def newest(d):
            with contextlib.suppress(OSError):
                return max((e.stat().st_mtime for e in os.scandir(d) if e.is_file()), default=0)
            return 0
        if newest(src) > newest(caps):
            tmp = f"{caps}.{os.getpid()}.{self.name}"
            shutil.copytree(src, tmp, symlinks=True)
            with _global_lock():
                shutil.rmtree(caps, ignore_errors=True)
                os.rename(tmp, caps)

    def _caps_dir(self) -> str:
        """The machine-wide QEMU capability cache for this lab's QEMU: one per userland root
        (a root fixes the QEMU and libvirt versions), the plain one for the machine's own."""
        root = self.info.get("root")
        if not root:
            return f"{INDEX_DIR}/qemu-capabilities"
        return f"{INDEX_DIR}/qemu-capabilities.{os.path.basename(os.path.dirname(root))}"

    def _keep_logs(self, what: str = "come up"):
        """After a failed up (or restart, reboot): keep the logs where the error message can
        point to; the state dir goes with the lab."""
        dst = f"/tmp/kvmnet-lab-failed-{self.prefix}-{self.name}"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(f"{self.state_dir}/log", dst)
        print(f"kvmlab: lab {self.name} failed to {what}; logs kept in {dst}", file=sys.stderr)

    # -- daemons -----------------------------------------------------------------------------

    def _stop(self, daemon: str, timeout: float = 20):
        comm = self._daemon(daemon)[0]
        pids = [p.pid for p in self.processes() if p.comm == comm]
        _kill(pids, signal.SIGTERM)
        if not _wait_gone(pids, timeout):
            _kill(pids, signal.SIGKILL)
            _wait_gone(pids, 5)
        if daemon == "nm" and pids:
            # the bus may not have seen the old NetworkManager go yet: a new one started now
            # finds its name taken ("Service already taken") and exits
            ask = self.enter_argv(["dbus-send", "--system", "--print-reply",
                                     "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus.NameHasOwner",
                                     "string:org.freedesktop.NetworkManager"])
            deadline = time.monotonic() + 10
            while "boolean true" in _run(ask, check=False, env=DAEMON_ENV).stdout:
                if time.monotonic() > deadline:
                    raise LabError(f"lab {self.name}: the old NetworkManager still holds its "
                                   "D-Bus name")
                time.sleep(0.02)

    def restart(self, daemon: str, timeout: float = 60) -> None:
        """Restart "nm" or "libvirt"; return when it is ready again."""
        self._daemon(daemon)
        self._stop(daemon)
        try:
            self._start_daemons((daemon,), timeout)
        except LabError:
            with contextlib.suppress(Exception):
                self._keep_logs(f"restart {daemon}")
            raise

    def _infra(self) -> set:
        """Machine PIDs of the lab's own processes: holder, bus, sshd and its sessions, DHCP."""
        s = self.state_dir
        marks = (f"--config-file={s}/files/dbus.conf", f"{s}/sshd_config",
                 f"--dhcp-leasefile={s}/dnsmasq.leases")
        procs = self.processes()
        # substrings: sshd rewrites its command line ("sshd: /usr/sbin/sshd -D ... [listener]")
        keep = {p.pid for p in procs if any(m in " ".join(p.cmdline) for m in marks)}
        children = {}
        for p in procs:
            children.setdefault(p.ppid, []).append(p.pid)
        stack = list(keep)
        while stack:  # sshd's sessions: an ansible connection survives a reboot of the lab
            for c in children.get(stack.pop(), []):
                if c not in keep:
                    keep.add(c)
                    stack.append(c)
        return keep | {self.holder()}

    def reboot(self, timeout: float = 90) -> None:
        """Stop NM and libvirtd and everything they left running (guests, dnsmasq), delete the
        runtime links (all but lo, ens32, ens33, mgmt0), reset the lab's firewall and the daemons'
        /run state, then start both again; return when both are ready."""
        self._stop("libvirt")
        self._stop("nm")
        holder, infra = self.holder(), self._infra()
        doomed = [p.pid for p in self.processes() if p.pid not in infra and p.ppid == holder]
        _kill(doomed)
        if not _wait_gone(doomed, 20):
            raise LabError(f"lab {self.name}: processes {doomed} survived SIGKILL")
        _run(self.enter_argv(["sh", "-c", REBOOT_SH]), env=DAEMON_ENV)
        try:
            self._start_daemons(("nm", "libvirt"), timeout)
        except LabError:
            with contextlib.suppress(Exception):
                self._keep_logs("reboot")
            raise

    # -- guests ------------------------------------------------------------------------------

    def guest_xml(self, guest: str, interfaces: list | None = None) -> str:
        """A tiny diskless guest (64 MiB): KVM when /dev/kvm works, else TCG; ACPI for hotplug.
        ``interfaces``: raw ``<interface>`` XML snippets (default: one on network "default")."""
        ifaces = [DEFAULT_IFACE] if interfaces is None else list(interfaces)
        body = "\n    ".join(ifaces)
        return f"""<domain type='{"kvm" if kvm_usable() else "qemu"}'>
  <name>{guest}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    {body}
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""

    def define_guest(self, guest: str, interfaces: list | None = None,
                     start: bool = False) -> None:
        self.exec([*VIRSH, "define", "/dev/stdin"], input=self.guest_xml(guest, interfaces))
        if start:
            self.exec([*VIRSH, "start", guest])

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict:
        info = self.info
        out = {"name": self.name, "prefix": self.prefix, "index": info.get("index"),
               "userland": info.get("userland"), "versions": info.get("versions"),
               "root": info.get("root"),
               "ssh": info.get("ssh"), "dhcp": info.get("dhcp"), "address": info.get("address"),
               "key_file": self.key_file, "state_dir": self.state_dir, "netns": self.netns,
               "wire_netns": self.wire_netns}
        try:
            out["holder"] = self.holder()
            out["lan_address"] = self.lan_address()
            out["processes"] = sorted(map(repr, self.processes()))
            nm = self.exec(["nmcli", "-t", "-f", "RUNNING,STATE", "general"], check=False,
                           timeout=10, env=DAEMON_ENV)
            out["networkmanager"] = nm.stdout.strip() or nm.stderr.strip()
            lv = self.exec([*VIRSH, "list", "--all", "--name"], check=False, timeout=10,
                           env=DAEMON_ENV)
            out["libvirt"] = "running" if lv.returncode == 0 else lv.stderr.strip()
            out["ok"] = (nm.returncode == 0 and nm.stdout.startswith("running")
                         and lv.returncode == 0)
        except LabError as e:
            out["ok"] = False
            out["error"] = str(e)
        return out

    # -- down --------------------------------------------------------------------------------

    def down(self) -> None:
        """Tear the lab down completely; idempotent, also for half-made labs."""
        errors = []
        s = self.state_dir
        # ssh multiplexing masters (ansible's ControlPersist) run in the controller namespace
        with contextlib.suppress(FileNotFoundError):
            for sock in os.listdir(f"{s}/cp"):
                _run(["ssh", "-o", f"ControlPath={s}/cp/{sock}", "-O", "exit", "lab"],
                     check=False, timeout=10)
        holder = None
        with contextlib.suppress(LabError):
            holder = self.holder()
        holder = holder or self._find_holder()
        if holder:
            with contextlib.suppress(Exception):
                self._save_caps(holder)
            pid_ns = _ino(f"/proc/{holder}/ns/pid")
            members = [p.pid for p in _procs_in_ns("pid", {pid_ns})] if pid_ns else []
            _kill([holder])  # the kernel then kills every process of the lab's PID namespace
            if not _wait_gone([holder, *members], 30):
                errors.append(f"lab processes survive: {[p for p in members if _alive(p)]}")
        # stragglers that entered our namespaces without the lab's PID namespace
        inodes = {i for i in (_ino(_netns_path(self.netns)), _ino(_netns_path(self.wire_netns)))
                  if i}
        if inodes:
            strays = [p.pid for p in _procs_in_ns("net", inodes)]
            _kill(strays)
            _wait_gone(strays, 10)
        index = None
        with contextlib.suppress(Exception):
            index = self.info["index"]
        ctl = ctl_netns(self.prefix)
        if index is not None and _netns_exists(ctl):
            _run(["ip", "-n", ctl, "link", "del", f"lab{index}"], check=False)
        for ns in (self.netns, self.wire_netns):
            if _netns_exists(ns):
                cp = _run(["ip", "netns", "del", ns], check=False)
                if cp.returncode != 0:
                    errors.append(cp.stderr.strip())
        with _global_lock():
            if index is not None:
                slot = os.path.join(INDEX_DIR, str(index))
                if os.path.islink(slot) and os.readlink(slot) == s:
                    os.unlink(slot)
            shutil.rmtree(s, ignore_errors=True)
            if os.path.exists(s):
                errors.append(f"cannot remove {s}")
            _drop_ctl_if_unused(self.prefix)
        self._info = None
        self._holder = None
        if errors:
            raise LabError(f"lab {self.name}: teardown incomplete: " + "; ".join(errors))


def _drop_ctl_if_unused(prefix: str):
    """Delete the controller namespace when no lab of this prefix is left (caller holds lock)."""
    root = root_dir(prefix)
    if os.path.isdir(root) and os.listdir(root):
        return
    ctl = ctl_netns(prefix)
    ino = _ino(_netns_path(ctl))
    # a command still running in it (a ctl-exec'd ansible) keeps it: down-all takes it then
    if ino and not _procs_in_ns("net", {ino}):
        _run(["ip", "netns", "del", ctl], check=False)
    with contextlib.suppress(OSError):
        os.rmdir(root)


def lab_names(prefix: str | None = None) -> list:
    """Names of the labs of this prefix: state dirs and namespaces (also of half-made labs)."""
    p = _prefix(prefix)
    names = set()
    root = root_dir(p)
    if os.path.isdir(root):
        names |= {d for d in os.listdir(root) if NAME_RE.match(d)}
    if os.path.isdir("/run/netns"):
        for ns in os.listdir("/run/netns"):
            m = re.match(rf"^{re.escape(p)}-(.+?)(-w)?$", ns)
            if m and ns != ctl_netns(p) and NAME_RE.match(m.group(1)):
                names.add(m.group(1))
    return sorted(names)


def down_all(prefix: str | None = None) -> None:
    """Tear down every lab of this prefix (half-made ones too) and its controller namespace."""
    errors = []
    for name in lab_names(prefix):
        try:
            Lab(name, prefix).down()
        except LabError as e:
            errors.append(str(e))
    ctl = ctl_netns(prefix)
    ino = _ino(_netns_path(ctl))
    if ino:
        strays = [p.pid for p in _procs_in_ns("net", {ino})]
        _kill(strays)
        _wait_gone(strays, 10)
        _run(["ip", "netns", "del", ctl], check=False)
    with contextlib.suppress(OSError):
        os.rmdir(root_dir(prefix))
    if errors:
        raise LabError("; ".join(errors))


def controller_argv(argv: list, prefix: str | None = None) -> list:
    """Wrap argv so it runs in the controller namespace, from where the labs answer ssh.

    Same filesystem, working directory and environment; only the network differs. Identity when
    no ssh lab of this prefix exists (no controller namespace)."""
    ctl = ctl_netns(prefix)
    if not _netns_exists(ctl):
        return list(argv)
    return ["nsenter", f"--net={_netns_path(ctl)}", "--", *argv]


def inventory_text(labs: list, lan: bool = False) -> str:
    """An INI inventory (group ``kvmnet_labs``) for ssh-enabled labs.

    ``lan``: reach each host at its LAN address (``Lab.lan_address``: its DHCP lease, or what
    ens32 or the bridge over it carries now) from the far side of its LAN, through the lab's
    ``wire-ssh`` (ssh in its wire namespace), as a fleet's controller does; ansible-playbook
    itself may run anywhere."""
    lines = ["[kvmnet_labs]"]
    for lab in labs:
        if not lab.address:
            raise LabError(f"lab {lab.name} has no ssh (up it with --ssh)")
        host_vars = {
            "ansible_host": lab._lan_address_or_fail() if lan else lab.address,
            "ansible_ssh_private_key_file": lab.key_file,
            # the multiplexing socket lives in the lab's state dir: "down" ends its master
            "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=60s "
                                f"-o ControlPath={lab.state_dir}/cp/%C",
        }
        if lan:
            # every ssh Ansible starts (files too: piped, no sftp/scp) runs on the lab's wire
            host_vars["ansible_ssh_executable"] = lab.wire_ssh
            host_vars["ansible_ssh_transfer_method"] = "piped"
        lines.append(lab.name + "".join(f" {k}={shlex.quote(v)}" for k, v in host_vars.items()))
    lines += [
        "",
        "[kvmnet_labs:vars]",
        "ansible_connection=ssh",
        "ansible_user=root",
        "ansible_python_interpreter=/usr/bin/python3",
        "ansible_pipelining=true",
        "ansible_ssh_common_args='-o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'",
        "",
    ]
    return "\n".join(lines)


def write_inventory(labs: list, path: str, lan: bool = False) -> None:
    """Write ``inventory_text(labs, lan)`` to path (a file: ansible-core cannot read INI from a
    pipe)."""
    text = inventory_text(labs, lan)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
