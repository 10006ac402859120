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
    "python3-libvirt", "python3-lxml",
]
OVERLAY_DIRS = ("etc", "var", "usr", "home", "opt", "srv")
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

DEFAULT_IFACE = (
    "<interface type='network'><source network='default'/><model type='virtio'/>"
    "<rom enabled='no'/></interface>"
)

# Runs inside the lab (all its namespaces) right after the holder started. $1 state dir, $2 name.
SETUP_SH = r"""
set -eu
S=$1; NAME=$2; L=$S/lab
hostname "$NAME"
# This mount namespace is a private copy of the machine's: drop its copies of the netns mounts,
# else it would keep other labs' namespaces (and their veths) alive after they are deleted.
if grep -q ' /run/netns' /proc/self/mountinfo; then umount -R -l /run/netns; fi
mount -t proc -o nosuid,nodev,noexec proc /proc
mount --bind /proc/sys /proc/sys
mount --bind /proc/sys/net /proc/sys/net
mount -o remount,bind,ro /proc/sys
# NetworkManager keeps devices unmanaged (waiting for udev) while /sys is writable.
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount --bind /sys/devices /sys/devices
mount -o remount,bind,ro,nosuid,nodev,noexec /sys
mount -t tmpfs -o mode=0755 kvmnet-lab "$L"
for d in OVERLAY_DIRS; do
  [ -d "/$d" ] || continue
  mkdir -p "$L/upper/$d" "$L/work/$d"
  mount -t overlay -o "lowerdir=/$d,upperdir=$L/upper/$d,workdir=$L/work/$d" "kvmnet-$d" "/$d"
done
# root's home is a fresh one, as on a new Debian host (not the machine's dotfiles and keys),
# but the machine's toolchains there stay usable (read-only) by their absolute paths
mkdir -p -m 0700 "$L/root"
for f in bashrc profile; do
  if [ -f "/usr/share/base-files/dot.$f" ]; then cp "/usr/share/base-files/dot.$f" "$L/root/.$f"; fi
done
for d in TOOL_DIRS; do
  [ -d "/root/$d" ] || continue
  mkdir -p "$L/root/$d"
  mount --rbind "/root/$d" "$L/root/$d"
  mount -o remount,bind,ro "$L/root/$d"
done
mount --rbind "$L/root" /root
mkdir -p "$L/run/${S#/run/}"
mount --bind "$S" "$L/run/${S#/run/}"
mount --rbind "$L/run" /run
mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
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


def ensure_packages() -> None:
    """Install the Debian packages the lab needs when any is missing (checked once per process)."""
    global _packages_checked
    if _packages_checked:
        return
    cp = _run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *PACKAGES], check=False)
    have = {line.split()[0] for line in cp.stdout.splitlines() if line.split()[1:2] == ["ii"]}
    missing = [p for p in PACKAGES if p not in have]
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
    _packages_checked = True


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
        """argv that runs ``argv`` inside the lab (all its namespaces; ``net``: a netns file)."""
        return ["nsenter", "-t", str(self.holder()), "--mount", "--uts", "--ipc", "--pid",
                f"--net={net}" if net else "--net", f"--wd={wd or '/'}", "--", *argv]

    def exec_argv(self, argv, cwd: str | None = None) -> list:
        """argv that runs ``argv`` in the lab in the working directory ``cwd`` (default: ours)."""
        if cwd is None:
            try:
                cwd = os.getcwd()
            except FileNotFoundError:
                cwd = "/"
        if not os.path.isdir(f"/proc/{self.holder()}/root{cwd}"):
            cwd = "/"
        return self.enter_argv(list(argv), wd=cwd)

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

    def ssh_argv(self, argv) -> list:
        """ssh argv that runs argv in the lab; run it through ``controller_argv``."""
        if not self.address:
            raise LabError(f"lab {self.name} has no ssh")
        return ["ssh", *self.ssh_options(), f"root@{self.address}", "--", shlex.join(argv)]

    # -- up ----------------------------------------------------------------------------------

    @classmethod
    def up(cls, name: str, ssh: bool = False, dhcp: bool = False, prefix: str | None = None,
           timeout: float = 90) -> "Lab":
        """Start lab NAME; return when NetworkManager, libvirtd (and sshd) are ready."""
        ensure_packages()
        lab = cls(name, prefix)
        lab._create(ssh, dhcp)
        try:
            lab._boot(ssh, dhcp, timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                lab._keep_logs()
            lab.down()
            raise
        return lab

    def _create(self, ssh, dhcp):
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
                            address=f"{MGMT_NET}.{index}.2" if ssh else None, holder=None)

    def _boot(self, ssh, dhcp, timeout):
        s, idx = self.state_dir, self.index
        for d in ("log", "files", "lab", "cp"):
            os.makedirs(f"{s}/{d}", exist_ok=True)
        for fname, text in (("NetworkManager.conf", NM_CONF), ("qemu.conf", QEMU_CONF),
                            ("libvirtd.conf", LIBVIRTD_CONF), ("dbus.conf", DBUS_CONF),
                            ("holder.py", HOLDER_CODE)):
            with open(f"{s}/files/{fname}", "w") as f:
                f.write(text)
        caps = f"{INDEX_DIR}/qemu-capabilities"
        if os.path.isdir(caps):
            shutil.copytree(caps, f"{s}/files/qemu-capabilities", symlinks=True)

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

        _run(self.enter_argv(["sh", "-c", SETUP_SH, "setup", s, self.name]), env=DAEMON_ENV)

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
        with open(f"{s}/sshd_config", "w") as f:
            f.write(f"""\
ListenAddress {self.address}:22
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
        caps = f"{INDEX_DIR}/qemu-capabilities"
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

    def _keep_logs(self):
        """After a failed up: keep the logs where the error message can point to."""
        dst = f"/tmp/kvmnet-lab-failed-{self.prefix}-{self.name}"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(f"{self.state_dir}/log", dst)
        print(f"kvmlab: lab {self.name} failed to come up; logs kept in {dst}", file=sys.stderr)

    # -- daemons -----------------------------------------------------------------------------

    def _stop(self, daemon: str, timeout: float = 20):
        comm = self._daemon(daemon)[0]
        pids = [p.pid for p in self.processes() if p.comm == comm]
        _kill(pids, signal.SIGTERM)
        if not _wait_gone(pids, timeout):
            _kill(pids, signal.SIGKILL)
            _wait_gone(pids, 5)

    def restart(self, daemon: str, timeout: float = 60) -> None:
        """Restart "nm" or "libvirt"; return when it is ready again."""
        self._daemon(daemon)
        self._stop(daemon)
        self._start_daemons((daemon,), timeout)

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
        self._start_daemons(("nm", "libvirt"), timeout)

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
               "ssh": info.get("ssh"), "dhcp": info.get("dhcp"), "address": info.get("address"),
               "key_file": self.key_file, "state_dir": self.state_dir, "netns": self.netns,
               "wire_netns": self.wire_netns}
        try:
            out["holder"] = self.holder()
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


def inventory_text(labs: list) -> str:
    """An INI inventory (group ``kvmnet_labs``) for ssh-enabled labs."""
    lines = ["[kvmnet_labs]"]
    for lab in labs:
        if not lab.address:
            raise LabError(f"lab {lab.name} has no ssh (up it with --ssh)")
        host_vars = {
            "ansible_host": lab.address,
            "ansible_ssh_private_key_file": lab.key_file,
            # the multiplexing socket lives in the lab's state dir: "down" ends its master
            "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=60s "
                                f"-o ControlPath={lab.state_dir}/cp/%C",
        }
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


def write_inventory(labs: list, path: str) -> None:
    """Write ``inventory_text(labs)`` to path (a file: ansible-core cannot read INI from a pipe)."""
    text = inventory_text(labs)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
