"""The action plugins (plugins/plugin_utils/binary_module.py) through real ansible-playbook over
ssh to a lab host: ssh round trips per task counted from -vvv (one per task once the binary is
cached, two for the first task of a module on a host, five or more for the same binary run as a
plain binary module), the cache private to the user the module runs as (with become through
sudo, with and without a password: root's), a cache planted or made writable by another local
user, or under a directory another user owns, never run, a binary that differs sent again, a
cache that cannot be made or written (a file in its place, a read-only home, a full disk, a
read-only cache) served by the plain transfer, the binary picked by the host's `uname -m`
(aarch64; an architecture without a binary fails and runs nothing), check mode, diff, no_log,
`environment`, ansible_remote_tmp, two workers filling one cache at the same moment, and async
refused."""

import contextlib
import hashlib
import json
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import ROOT

BIN = ROOT / "files" / "bin"
CACHE = "kvmnet-bin"
OUR_WARNING = "WARNING]: kvmnet.network"


@pytest.fixture(scope="module")
def host(collection):
    """One ssh lab host for the whole file; make collection (the fixture) has built files/bin."""
    from kvmlab import Lab

    Lab("tactplug").down()
    lab = Lab.up("tactplug", ssh=True)
    try:
        yield lab
    finally:
        lab.down()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def net_task(name, network, **extra):
    task = {"name": name, "kvmnet.network.libvirt_net": {"name": network, "forward": "bridge", "bridge": "br0"}}
    task.update(extra)
    return task


class Run:
    """An ansible-playbook -vvv run, split per task: ssh commands, file transfers, result."""

    def __init__(self, proc):
        self.rc, self.out = proc.returncode, proc.stdout + proc.stderr
        self.tasks = {}
        for block in re.split(r"^TASK \[", self.out, flags=re.M)[1:]:
            name = block.split("]", 1)[0]
            results = {}
            for m in re.finditer(r"^(ok|changed|fatal): \[([^\]]+)\]:?(?: FAILED!)? => (\{.*?^\})", block,
                                 flags=re.M | re.S):
                results[m.group(2)] = dict(json.loads(m.group(3)), _status=m.group(1))
            self.tasks[name] = {
                "execs": len(re.findall(r"SSH: EXEC ", block)),
                "puts": len(re.findall(r"^<[^>]+> PUT ", block, flags=re.M)),
                "results": results,
                "text": block,
            }

    def result(self, task, host=None):
        results = self.tasks[task]["results"]
        return results[host] if host else next(iter(results.values()))


def play(collection, labs, tasks, tmp_path, host_vars=None, play_vars=None, hosts_ini=None, forks=5, library=None):
    """Write an inventory and a play, run ansible-playbook -vvv in the labs' controller namespace."""
    import kvmlab

    work = tmp_path / uuid.uuid4().hex[:8]
    (work / "inventory" / "group_vars").mkdir(parents=True)
    inv = work / "inventory" / "hosts.ini"
    if hosts_ini is None:
        kvmlab.write_inventory(labs, str(inv))
    else:
        inv.write_text(hosts_ini)
    (work / "inventory" / "group_vars" / "all.yml").write_text(json.dumps(host_vars or {}))
    playbook = work / "play.yml"
    playbook.write_text(json.dumps([{"hosts": "all", "gather_facts": False, **(play_vars or {}), "tasks": tasks}]))
    env = dict(collection["env"], ANSIBLE_FORCE_COLOR="0", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    if library:
        env["ANSIBLE_LIBRARY"] = str(library)
    argv = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-vvv", "-f", str(forks), "-i", str(inv), str(playbook)]
    p = subprocess.run(kvmlab.controller_argv(argv), env=env, capture_output=True, text=True, timeout=600, cwd=work)
    return Run(p)


def remote_tmp(name):
    """A remote_tmp of its own per test (root's home in the lab): every test starts with no cache."""
    return f"~/.ansible/t-{name}-{uuid.uuid4().hex[:6]}"


def cache_listing(lab, path) -> dict:
    """{name: (uid, mode, sha256)} of the cache directory (a shell-expanded path in the lab)."""
    p = lab.exec(["sh", "-c", f'cd {path} && for f in * .[!.]*; do [ -e "$f" ] && '
                              f'printf "%s %s %s\\n" "$f" "$(stat -c "%u %a" "$f")" "$(sha256sum < "$f" | cut -c1-64)"; done; true'])
    out = {}
    for line in p.stdout.splitlines():
        name, uid, mode, digest = line.split()
        out[name] = (int(uid), mode, digest)
    return out


def nets(host):
    return host.exec(["virsh", "-q", "-c", "qemu:///system", "net-list", "--all", "--name"]).stdout.split()


def test_one_round_trip_per_task_once_the_binary_is_cached(collection, host, tmp_path):
    rt = remote_tmp("rtrip")
    tasks = [net_task("first", "ap-one"), net_task("again", "ap-one"),
             {"name": "other module", "kvmnet.network.macvtap_link": {"name": "apmv0", "link": "ens32",
                                                                       "mode": "bridge"}},
             {"name": "other module again", "kvmnet.network.macvtap_link": {"name": "apmv0", "link": "ens32",
                                                                             "mode": "bridge"}}]
    r = play(collection, [host], tasks, tmp_path, host_vars={"ansible_remote_tmp": rt})
    assert r.rc == 0, r.out[-5000:]
    counts = {t: (r.tasks[t]["execs"], r.tasks[t]["puts"]) for t in r.tasks}
    assert counts == {"first": (2, 0), "again": (1, 0), "other module": (2, 0), "other module again": (1, 0)}, counts
    assert r.result("first")["changed"] is True and r.result("again")["changed"] is False
    assert r.result("other module")["changed"] is True and r.result("other module again")["changed"] is False
    # the network really exists: the binary ran on the host
    assert "ap-one" in host.exec(["virsh", "-q", "-c", "qemu:///system", "net-list", "--all", "--name"]).stdout

    cache = f"{rt}/{CACHE}"
    assert host.exec(["sh", "-c", f"stat -c '%u %a %F' {cache}"]).stdout.split() == ["0", "700", "directory"]
    want = {sha256(BIN / "x86_64" / m): (0, "700", sha256(BIN / "x86_64" / m)) for m in ("libvirt_net", "macvtap_link")}
    assert cache_listing(host, cache) == want, "exactly the two binaries, named by sha256, no args or temp files left"


def test_a_plain_binary_module_costs_more_round_trips(collection, host, tmp_path):
    """The 'before': the same binary as a plain binary module (what the collection shipped
    before the action plugins) makes a tmp dir, copies binary and args, chmods, runs, removes."""
    play_dir = tmp_path / "plain"
    (play_dir / "library").mkdir(parents=True)
    shutil.copy(BIN / "x86_64" / "libvirt_net", play_dir / "library" / "kvmnet_plain_libvirt_net")
    tasks = [{"name": "plain", "kvmnet_plain_libvirt_net": {"name": "ap-plain", "forward": "bridge", "bridge": "br0"}},
             {"name": "plain again", "kvmnet_plain_libvirt_net": {"name": "ap-plain", "forward": "bridge",
                                                                 "bridge": "br0"}}]
    r = play(collection, [host], tasks, play_dir, library=play_dir / "library")
    assert r.rc == 0, r.out[-5000:]
    again = r.tasks["plain again"]
    assert r.result("plain again")["changed"] is False
    # mkdir, put binary, put args (sftp/scp: one ssh each), chmod, run, rm
    assert again["execs"] + again["puts"] >= 5, again


def test_check_mode_diff_and_no_log(collection, host, tmp_path):
    tasks = [net_task("check", "ap-check", check_mode=True, diff=True),
             {"name": "hidden", "no_log": True,  # isolated: no warning about a missing bridge
              "kvmnet.network.libvirt_net": {"name": "ap-secret-7d1e", "forward": "isolated"}}]
    r = play(collection, [host], tasks, tmp_path, host_vars={"ansible_remote_tmp": remote_tmp("check")})
    assert r.rc == 0, r.out[-5000:]
    check = r.result("check")
    assert check["changed"] is True and check["diff"][0]["after"], check
    nets = host.exec(["virsh", "-q", "-c", "qemu:///system", "net-list", "--all", "--name"]).stdout.split()
    assert "ap-check" not in nets, "check mode defined the network"
    hidden = r.result("hidden")
    assert hidden["censored"].startswith("the output has been hidden"), hidden
    assert "ap-secret-7d1e" in nets, "the no_log task did not run"
    # the task's values appear nowhere in the output, not even in -vvv's raw ssh output (the
    # module masks them itself with _ansible_no_log; the arguments travel on stdin)
    assert "ap-secret-7d1e" not in r.tasks["hidden"]["text"], r.tasks["hidden"]["text"][-3000:]


def test_async_is_refused_clearly(collection, host, tmp_path):
    r = play(collection, [host], [net_task("bg", "ap-async", **{"async": 30, "poll": 2})], tmp_path)
    assert r.rc != 0
    res = r.result("bg")
    assert res["_status"] == "fatal" and "does not support async" in res["msg"], res
    assert r.tasks["bg"]["execs"] == 0


@contextlib.contextmanager
def shim(lab, tool, script):
    """/usr/local/bin/TOOL in the lab: first on the PATH of root's ssh sessions and in sudo's
    secure_path, ahead of the real one; removed again. The lab's /usr is its own copy-on-write
    overlay, so the machine's never changes."""
    fstype = lab.exec(["findmnt", "-n", "-o", "FSTYPE", "-T", "/usr/local/bin"]).stdout.strip()
    assert fstype == "overlay", "refusing to put a shim on a PATH outside a lab overlay"
    path = f"/usr/local/bin/{tool}"
    assert lab.exec(["test", "-e", path], check=False).returncode != 0, f"{path} exists already"
    lab.exec(["sh", "-c", f"cat > {path} && chmod 755 {path}"], input=script)
    try:
        yield path
    finally:
        lab.exec(["rm", "-f", path])


BARRIER = "/run/kvmnet-test-barrier"  # the lab's private /run
# chmod runs once per send, between writing the binary's temporary file and renaming it into
# place: each sender waits there until the other has arrived too (at most ~90 s, then it goes
# on alone and says so), so both renames into the one cache happen at the same moment.
CHMOD_BARRIER = f"""#!/bin/sh
: > {BARRIER}/$$
n=0
while [ "$(ls {BARRIER} | wc -l)" -lt 2 ]; do
  n=$((n + 1))
  if [ $n -ge 900 ]; then echo "alone $$" >> {BARRIER}.log; exec /bin/chmod "$@"; fi
  sleep 0.1
done
echo "met $$" >> {BARRIER}.log
exec /bin/chmod "$@"
"""


def test_two_workers_fill_one_cache_at_once(collection, host, tmp_path):
    """Two inventory names for the same lab host, forks 2, and a chmod on the host that holds
    each sender between writing its temporary file and renaming it until the other sender is
    there too: both found no binary, both send it, both rename it into one cache at once.
    Had the workers run one after the other, the first would have gone on alone (and the
    second found the binary cached: no send). Each write is atomic (own temporary file,
    checked, renamed), so both runs succeed and the cache holds one binary, no temporary file."""
    import kvmlab

    rt = remote_tmp("forks")
    text = kvmlab.inventory_text([host])
    line = next(ln for ln in text.splitlines() if ln.startswith(host.name + " "))
    text = text.replace(line, line.replace(host.name, "alias-a", 1) + "\n" + line.replace(host.name, "alias-b", 1))
    tasks = [{"name": "both", "kvmnet.network.domain_iface": {"domain": "nope-no-such-guest", "mac": "52:54:00:00:00:01",
                                                               "state": "absent"}}]
    host.exec(["sh", "-c", f"rm -rf {BARRIER} {BARRIER}.log && mkdir {BARRIER}"])
    with shim(host, "chmod", CHMOD_BARRIER):
        r = play(collection, [host], tasks, tmp_path, host_vars={"ansible_remote_tmp": rt}, hosts_ini=text, forks=2)
    arrivals = host.exec(["cat", f"{BARRIER}.log"]).stdout.split()[::2]
    assert arrivals == ["met", "met"], f"the two senders did not overlap: {arrivals}"
    results = r.tasks["both"]["results"]
    assert set(results) == {"alias-a", "alias-b"}, r.out[-5000:]
    # the module itself ran on both (and answered about the missing guest), each after its send
    for res in results.values():
        assert "nope-no-such-guest" in res["msg"], res
    assert r.tasks["both"]["execs"] == 4 and r.tasks["both"]["puts"] == 0
    assert OUR_WARNING not in r.tasks["both"]["text"]
    digest = sha256(BIN / "x86_64" / "domain_iface")
    assert cache_listing(host, f"{rt}/{CACHE}") == {digest: (0, "700", digest)}


UNAME = """#!/bin/sh
# this lab host says it is {arch}
if [ "$1" = -m ]; then echo {arch}; exit 0; fi
exec /usr/bin/uname "$@"
"""
QEMU = shutil.which("qemu-aarch64-static") or "/usr/bin/qemu-aarch64-static"


def test_an_aarch64_host_gets_the_aarch64_binary(collection, host, tmp_path):
    """`uname -m` says aarch64 (a shim): the plugin sends the aarch64 binary, the host checks
    it against the aarch64 sha256, caches it and runs it, which this x86_64 kernel cannot (no
    binfmt_misc here): the task fails with the kernel's Exec format error. The cached file,
    run under qemu-aarch64-static, is that module."""
    rt = remote_tmp("a64")
    with shim(host, "uname", UNAME.format(arch="aarch64")):
        r = play(collection, [host], [net_task("arm", "ap-arm")], tmp_path, host_vars={"ansible_remote_tmp": rt})
    res = r.result("arm")
    assert r.rc != 0 and res["_status"] == "fatal", res
    assert "Exec format error" in res["module_stderr"] and res["rc"] == 126, res
    assert (r.tasks["arm"]["execs"], r.tasks["arm"]["puts"]) == (2, 0)
    arm = sha256(BIN / "aarch64" / "libvirt_net")
    assert arm != sha256(BIN / "x86_64" / "libvirt_net")
    cache = host.exec(["sh", "-c", f"echo {rt}/{CACHE}"]).stdout.strip()
    assert cache_listing(host, cache) == {arm: (0, "700", arm)}
    assert "ap-arm" not in nets(host)
    args = {"name": "ap-arm", "forward": "bridge", "bridge": "br0", "_ansible_check_mode": True,
            "_ansible_diff": False, "_ansible_no_log": False, "_ansible_verbosity": 0, "_ansible_version": "2.19.0"}
    host.exec(["sh", "-c", f"cat > {cache}/args.test"], input=json.dumps(args))
    ran = json.loads(host.exec([QEMU, f"{cache}/{arm}", f"{cache}/args.test"]).stdout)
    assert ran["changed"] is True and ran["commands"][0][:4] == ["virsh", "-c", "qemu:///system", "net-define"], ran
    host.exec(["rm", f"{cache}/args.test"])


def test_an_architecture_without_a_binary_fails_clearly_and_runs_nothing(collection, host, tmp_path):
    rt = remote_tmp("riscv")
    with shim(host, "uname", UNAME.format(arch="riscv64")):
        r = play(collection, [host], [net_task("riscv", "ap-riscv")], tmp_path, host_vars={"ansible_remote_tmp": rt})
    res = r.result("riscv")
    assert r.rc != 0 and res["_status"] == "fatal", res
    assert res["msg"] == ("kvmnet.network.libvirt_net has no binary for this host's architecture 'riscv64' "
                          "(uname -m; this collection has: x86_64, aarch64); nothing was run on the host"), res
    assert (r.tasks["riscv"]["execs"], r.tasks["riscv"]["puts"]) == (1, 0)
    assert host.exec(["sh", "-c", f"test ! -e {rt}"], check=False).returncode == 0, "the cache was made"
    assert "ap-riscv" not in nets(host)


def intruder(lab):
    """An unprivileged local user of the lab host (its /etc is a throw-away overlay)."""
    if lab.exec(["id", "-u", "intruder"], check=False).returncode != 0:
        lab.exec(["useradd", "-M", "-s", "/bin/sh", "intruder"])
    return int(lab.exec(["id", "-u", "intruder"]).stdout)


def as_intruder(lab, script):
    return lab.exec(["setpriv", "--reuid=intruder", "--regid=intruder", "--init-groups", "--",
                     "/bin/sh", "-c", script])


FAKE = "#!/bin/sh\ntouch {base}/PWNED\necho '{{\"changed\": false, \"msg\": \"planted binary ran\"}}'\n"


@pytest.fixture
def shared_base(host):
    """A directory like /tmp (root's, sticky, writable by all) on the shared /tmp: the lab sees it."""
    base = f"/tmp/kvmnet-aptest-{uuid.uuid4().hex[:8]}"
    host.exec(["install", "-d", "-m", "1777", base])
    try:
        yield base
    finally:
        host.exec(["rm", "-rf", base])


def test_a_cache_planted_by_another_user_is_never_run(collection, host, tmp_path, shared_base):
    intruder(host)
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    # remote_tmp in a shared directory; the other user made the cache directory first
    as_intruder(host, f"mkdir -m 0777 {shared_base}/{CACHE} && cat > {shared_base}/{CACHE}/{digest} <<'EOF'\n"
                      f"{FAKE.format(base=shared_base)}EOF\nchmod 0777 {shared_base}/{CACHE}/{digest}")
    r = play(collection, [host], [net_task("planted", "ap-planted")], tmp_path,
             host_vars={"ansible_remote_tmp": shared_base})
    assert r.rc == 0, r.out[-5000:]
    res = r.result("planted")
    assert res["changed"] is True and res["msg"] != "planted binary ran", res
    assert host.exec(["test", "-e", f"{shared_base}/PWNED"], check=False).returncode != 0, "root ran the planted binary"
    assert re.search(r"WARNING\]: kvmnet.network: the binary cache .* not private", r.tasks["planted"]["text"])
    assert r.tasks["planted"]["puts"] >= 1, "the plain transfer was not used"


def test_a_cache_made_writable_by_others_is_never_run(collection, host, tmp_path, shared_base):
    intruder(host)
    rt = f"{shared_base}/root-rt"
    host.exec(["install", "-d", "-m", "0755", rt])
    r = play(collection, [host], [net_task("fill", "ap-writable")], tmp_path, host_vars={"ansible_remote_tmp": rt})
    assert r.rc == 0 and r.tasks["fill"]["execs"] == 2, r.out[-5000:]
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    # someone loosens the cache's mode; the other user then swaps the binary
    host.exec(["chmod", "0777", f"{rt}/{CACHE}"])
    as_intruder(host, f"cat > {rt}/{CACHE}/.x <<'EOF'\n{FAKE.format(base=shared_base)}EOF\n"
                      f"chmod 0755 {rt}/{CACHE}/.x && mv -f {rt}/{CACHE}/.x {rt}/{CACHE}/{digest}")
    r = play(collection, [host], [net_task("swapped", "ap-writable")], tmp_path, host_vars={"ansible_remote_tmp": rt})
    assert r.rc == 0, r.out[-5000:]
    res = r.result("swapped")
    assert res["changed"] is False and res["msg"] != "planted binary ran", res
    assert host.exec(["test", "-e", f"{shared_base}/PWNED"], check=False).returncode != 0, "root ran the swapped binary"
    assert re.search(r"WARNING\]: kvmnet.network: the binary cache .* not private", r.tasks["swapped"]["text"])


@pytest.fixture
def intruders_dir(host):
    """A directory on the shared /tmp that the other local user owns (0755, as a home is)."""
    intruder(host)
    base = f"/tmp/kvmnet-aptest-{uuid.uuid4().hex[:8]}-intruder"
    as_intruder(host, f"mkdir -m 0755 {base}")
    try:
        yield base
    finally:
        host.exec(["rm", "-rf", base])


# sha256sum on the host, letting the other user win the race at the worst moment: right after
# root's check of a cached binary, the other user swaps (with nothing but its own rights) the
# directory it may rename -- {base}/rt, in its own {base} -- for one holding its own binary.
SWAP_AFTER_CHECK = """#!/bin/sh
/usr/bin/sha256sum "$@"
rc=$?
if [ -e {base}/armed ]; then
  setpriv --reuid=intruder --regid=intruder --init-groups -- /bin/sh -c \\
    'rm {base}/armed && mv {base}/rt {base}/rt.old && mv {base}/evil {base}/rt'
fi
exit $rc
"""


def test_a_cache_under_a_directory_another_user_owns_is_never_used(collection, host, tmp_path, intruders_dir):
    """remote_tmp {base}/rt in a directory the other user owns: the cache {base}/rt/kvmnet-bin
    and its parent would be root's and 0700, but the other user may rename {base}/rt at any
    moment, between the sha256 check and the exec too. The check covers every directory up to
    /, so the plugin never uses that cache: the plain transfer, a warning, and the other
    user's binary never runs, even when it swaps the directory right after a sha256 check."""
    base = intruders_dir
    uid = intruder(host)
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    as_intruder(host, f"mkdir -p {base}/evil/{CACHE} && cat > {base}/evil/{CACHE}/{digest} <<'EOF'\n"
                      f"{FAKE.format(base=base)}EOF\nchmod 0755 {base}/evil/{CACHE}/{digest}")
    rt = f"{base}/rt"
    with shim(host, "sha256sum", SWAP_AFTER_CHECK.format(base=base)):
        first = play(collection, [host], [net_task("first", "ap-foreign")], tmp_path,
                     host_vars={"ansible_remote_tmp": rt})
        as_intruder(host, f": > {base}/armed")  # the next sha256 check of root's swaps the directory
        again = play(collection, [host], [net_task("again", "ap-foreign")], tmp_path,
                     host_vars={"ansible_remote_tmp": rt})
    assert host.exec(["test", "-e", f"{base}/PWNED"], check=False).returncode != 0, "root ran the other user's binary"
    assert host.exec(["test", "-e", f"{base}/armed"], check=False).returncode == 0, \
        "root checked a binary in the other user's directory"
    for r, task in ((first, "first"), (again, "again")):
        assert r.rc == 0, r.out[-5000:]
        assert r.result(task)["msg"] != "planted binary ran", r.result(task)
        text = r.tasks[task]["text"]
        assert re.search(rf"WARNING\]: kvmnet.network: the binary cache {rt}/{CACHE}: {base} is owned by uid {uid} "
                         r"\(uid 0\); it is not private", text), text[-3000:]
        assert r.tasks[task]["puts"] >= 2, "the plain transfer was not used"
    assert first.result("first")["changed"] is True and again.result("again")["changed"] is False
    # a check of the cache and its parent alone would have passed: both root's, 0700
    modes = host.exec(["stat", "-c", "%u %a", f"{rt}/{CACHE}", rt]).stdout.split("\n")[:2]
    assert modes == ["0 700", "0 700"], modes
    assert cache_listing(host, f"{rt}/{CACHE}") == {}


def test_a_different_binary_in_the_cache_is_replaced(collection, host, tmp_path):
    rt = remote_tmp("differ")
    r = play(collection, [host], [net_task("fill", "ap-differ")], tmp_path, host_vars={"ansible_remote_tmp": rt})
    assert r.rc == 0, r.out[-5000:]
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    # same name, other content (a truncated copy, as a full disk might leave)
    host.exec(["sh", "-c", f"truncate -s 1000 {rt}/{CACHE}/{digest}"])
    r = play(collection, [host], [net_task("again", "ap-differ")], tmp_path, host_vars={"ansible_remote_tmp": rt})
    assert r.rc == 0 and r.result("again")["changed"] is False, r.out[-5000:]
    assert (r.tasks["again"]["execs"], r.tasks["again"]["puts"]) == (2, 0)
    assert cache_listing(host, f"{rt}/{CACHE}") == {digest: (0, "700", digest)}


def test_a_host_whose_cache_cannot_be_made_gets_the_plain_transfer(collection, host, tmp_path):
    rt = remote_tmp("nocache")
    host.exec(["sh", "-c", f"mkdir -p {rt} && : > {rt}/{CACHE}"])  # a file where the directory would be
    r = play(collection, [host], [net_task("plain", "ap-nocache")], tmp_path, host_vars={"ansible_remote_tmp": rt})
    assert r.rc == 0, r.out[-5000:]
    res = r.result("plain")
    assert res["changed"] is True and OUR_WARNING not in r.tasks["plain"]["text"], res
    assert r.tasks["plain"]["puts"] >= 2 and "cannot make the binary cache" in r.tasks["plain"]["text"]
    assert "ap-nocache" in host.exec(["virsh", "-q", "-c", "qemu:///system", "net-list", "--all", "--name"]).stdout
    # and the remote tmp dir of that transfer is gone again
    left = host.exec(["sh", "-c", f"ls -A {rt}"]).stdout.split()
    assert left == [CACHE], left


SSHD_CONF = "/run/kvmnet-test-sshd.conf"  # the lab's private /run


def login_user(host, name, sudoers, password=None):
    """User NAME in the lab: the lab's ssh key, the sudoers rule SUDOERS, a password if given,
    and an sshd of this file on port 2222 (the lab's own sshd reads its authorized_keys from
    root's state dir, unreadable for other users); all inside the lab, gone with it."""
    if not shutil.which("sudo"):
        pytest.fail("sudo is not installed (tests/setup.sh installs it)")
    if host.exec(["id", "-u", name], check=False).returncode != 0:
        host.exec(["useradd", "-m", "-s", "/bin/sh", "-p", "*", name])
        host.exec(["sh", "-c", f"install -d -o {name} -g {name} -m 700 ~{name}/.ssh && "
                               f"install -o {name} -g {name} -m 600 {host.state_dir}/id_ed25519.pub "
                               f"~{name}/.ssh/authorized_keys && "
                               f"echo '{name} {sudoers}' > /etc/sudoers.d/{name} && chmod 440 /etc/sudoers.d/{name}"])
        if password:
            host.exec(["chpasswd"], input=f"{name}:{password}\n")
    if host.exec(["test", "-e", SSHD_CONF], check=False).returncode != 0:
        host.exec(["sh", "-c", f"cat > {SSHD_CONF} <<EOF\nListenAddress {host.address}:2222\n"
                               f"HostKey {host.state_dir}/ssh_host_ed25519_key\nPubkeyAuthentication yes\n"
                               "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n"
                               "PidFile none\nEOF"])
        host.exec(["/usr/sbin/sshd", "-f", SSHD_CONF])
    return name


def login_inventory(host, user, **host_vars) -> str:
    """The lab's inventory, logging in as USER through the sshd on port 2222."""
    import kvmlab

    text = kvmlab.inventory_text([host]).replace("ansible_user=root", f"ansible_user={user}")
    extra = "".join(f"{k}={v} " for k, v in host_vars.items())
    return text.replace(f"{host.name} ansible_host=", f"{host.name} ansible_port=2222 {extra}ansible_host=", 1)


@pytest.fixture
def sudo_user(host):
    """User kvmop in the lab with passwordless sudo."""
    return login_user(host, "kvmop", "ALL=(ALL) NOPASSWD: ALL")


ROOT_CACHE = f"/root/.ansible/tmp/{CACHE}"  # with become and the default remote_tmp


def test_become_with_sudo_uses_roots_private_cache(collection, host, tmp_path, sudo_user):
    # remote_tmp stays Ansible's default, ~/.ansible/tmp: the cache goes to root's home
    host.exec(["rm", "-rf", ROOT_CACHE])
    tasks = [net_task("sudo first", "ap-sudo"), net_task("sudo again", "ap-sudo"),
             {"name": "whoami", "ansible.builtin.raw": "id -un"}]
    r = play(collection, [host], tasks, tmp_path, hosts_ini=login_inventory(host, sudo_user),
             play_vars={"become": True})
    assert r.rc == 0, r.out[-5000:]
    assert "sudo -H -S -n" in r.tasks["sudo first"]["text"]
    assert r.result("sudo first")["changed"] is True and r.result("sudo again")["changed"] is False
    assert r.tasks["sudo again"]["execs"] == 1
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    assert cache_listing(host, ROOT_CACHE) == {digest: (0, "700", digest)}
    assert host.exec(["test", "-e", f"/home/{sudo_user}/.ansible/tmp/{CACHE}"], check=False).returncode != 0


SUDO_PASSWORD = "kvmnet-Test-pw-7"
ENV_DIR = "/run/kvmnet-test-env"  # the lab's private /run
# a virsh first on the task's PATH that notes every call, then runs the real one
LOGGING_VIRSH = f"""#!/bin/sh
{{ printf '%s ' "$@" | tr '\\n' ' '; echo; }} >> {ENV_DIR}/log
exec /usr/bin/virsh "$@"
"""


def test_become_with_a_sudo_password_and_a_tasks_environment(collection, host, tmp_path):
    """sudo asks for a password (ansible_become_password), and the task's `environment:`
    reaches the binary through the one round trip: a PATH that puts a logging virsh first."""
    user = login_user(host, "kvmpw", "ALL=(ALL) ALL", password=SUDO_PASSWORD)
    no_password = host.exec(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--",
                             "sudo", "-n", "true"], check=False)
    assert no_password.returncode != 0, "sudo does not ask this user for a password"
    host.exec(["sh", "-c", f"rm -rf {ROOT_CACHE} {ENV_DIR} && mkdir {ENV_DIR} && "
                           f"cat > {ENV_DIR}/virsh && chmod 755 {ENV_DIR}/virsh"], input=LOGGING_VIRSH)
    env = {"PATH": f"{ENV_DIR}:/usr/sbin:/usr/bin:/sbin:/bin"}
    tasks = [net_task("pw first", "ap-sudopw", environment=env), net_task("pw again", "ap-sudopw", environment=env),
             {"name": "whoami", "ansible.builtin.raw": "id -un"}]
    inventory = login_inventory(host, user, ansible_become_password=SUDO_PASSWORD)
    r = play(collection, [host], tasks, tmp_path, hosts_ini=inventory, play_vars={"become": True})
    assert r.rc == 0, r.out[-5000:]
    assert SUDO_PASSWORD not in r.out
    first = r.tasks["pw first"]["text"]
    assert "sudo -H -S -p" in first and "sudo -H -S -n" not in first, "sudo was not asked with a password"
    assert r.result("pw first")["changed"] is True and r.result("pw again")["changed"] is False
    assert (r.tasks["pw first"]["execs"], r.tasks["pw again"]["execs"]) == (2, 1)
    assert r.result("whoami")["stdout"].split() == ["root"]
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    assert cache_listing(host, ROOT_CACHE) == {digest: (0, "700", digest)}
    # both runs of the binary had the task's PATH: their virsh calls went through the logger
    # (the first run's read, define, start and verification, the second run's one read)
    calls = host.exec(["cat", f"{ENV_DIR}/log"]).stdout.splitlines()
    reads = [c for c in calls if "'net-info' '--network' 'ap-sudopw'" in c]
    assert len(reads) == 3 and calls[-1] == reads[-1] and any("net-define" in c for c in calls), "\n".join(calls)
    assert "ap-sudopw" in host.exec(["virsh", "-q", "-c", "qemu:///system", "net-list", "--all", "--name"]).stdout


@contextlib.contextmanager
def mounted(host, *mount_argv, at):
    """A mount in the lab's own mount namespace over AT, detached again afterwards."""
    host.exec(["mount", *mount_argv, at])
    try:
        yield
    finally:
        host.exec(["umount", "-l", at])


def test_a_read_only_home_gets_the_plain_transfer(collection, host, tmp_path, sudo_user):
    """With become the cache is in root's home, Ansible's own tmp dir in the login user's:
    root's home read-only (bound read-only over itself), so the cache cannot be made."""
    host.exec(["rm", "-rf", "/root/.ansible/tmp"])
    with mounted(host, "--rbind", "/root", at="/root"):
        host.exec(["mount", "-o", "remount,bind,ro", "/root"])
        assert host.exec(["mkdir", "/root/.kvmnet-probe"], check=False).returncode != 0, "/root is writable"
        r = play(collection, [host], [net_task("ro home", "ap-rohome")], tmp_path,
                 hosts_ini=login_inventory(host, sudo_user), play_vars={"become": True})
    assert r.rc == 0, r.out[-5000:]
    text = r.tasks["ro home"]["text"]
    assert r.result("ro home")["changed"] is True and OUR_WARNING not in text
    assert f"cannot make the binary cache {ROOT_CACHE}: plain transfer" in text, text[-3000:]
    assert r.tasks["ro home"]["puts"] >= 2 and "ap-rohome" in nets(host)
    assert host.exec(["test", "-e", "/root/.ansible/tmp"], check=False).returncode != 0


def test_a_full_cache_gets_the_plain_transfer_with_a_warning(collection, host, tmp_path, sudo_user):
    """The cache is made but the binary does not fit (a 64 KiB file system under it): the send
    fails (`sendfailed`), the module goes the plain way, nothing half-written stays."""
    host.exec(["sh", "-c", "rm -rf /root/.ansible/tmp && mkdir -p -m 700 /root/.ansible/tmp"])
    with mounted(host, "-t", "tmpfs", "-o", "size=64k,mode=0700", "kvmnet-test-full", at="/root/.ansible/tmp"):
        r = play(collection, [host], [net_task("full", "ap-full")], tmp_path,
                 hosts_ini=login_inventory(host, sudo_user), play_vars={"become": True})
        left = cache_listing(host, ROOT_CACHE)
    assert r.rc == 0, r.out[-5000:]
    text = r.tasks["full"]["text"]
    assert r.result("full")["changed"] is True and "ap-full" in nets(host)
    assert "WARNING]: kvmnet.network: writing libvirt_net into the host's binary cache failed" in text, text[-3000:]
    assert r.tasks["full"]["execs"] >= 3 and r.tasks["full"]["puts"] >= 2  # missing, send, then the plain way
    assert left == {}, "a temporary file of the failed send was left in the cache"


def test_a_read_only_cache_gets_the_plain_transfer(collection, host, tmp_path, sudo_user):
    """A cache that exists but can no longer be written (its file system remounted read-only):
    the args file cannot be made there (mktemp fails) for a cached binary, nor the temporary
    file of a send for one not cached: both tasks go the plain way."""
    host.exec(["sh", "-c", "rm -rf /root/.ansible/tmp && mkdir -p -m 700 /root/.ansible/tmp"])
    inventory = login_inventory(host, sudo_user)
    macvtap = {"name": "not cached", "kvmnet.network.macvtap_link": {"name": "aprovt0", "link": "ens33",
                                                                      "mode": "bridge"}}
    with mounted(host, "-t", "tmpfs", "-o", "mode=0700", "kvmnet-test-ro", at="/root/.ansible/tmp"):
        r = play(collection, [host], [net_task("fill", "ap-rocache")], tmp_path, hosts_ini=inventory,
                 play_vars={"become": True})
        assert r.rc == 0 and r.tasks["fill"]["execs"] == 2, r.out[-5000:]
        before = cache_listing(host, ROOT_CACHE)
        host.exec(["mount", "-o", "remount,ro", "/root/.ansible/tmp"])
        r = play(collection, [host], [net_task("cached", "ap-rocache2"), macvtap], tmp_path, hosts_ini=inventory,
                 play_vars={"become": True})
        after = cache_listing(host, ROOT_CACHE)
    assert r.rc == 0, r.out[-5000:]
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    assert before == after == {digest: (0, "700", digest)}
    for task in ("cached", "not cached"):
        text = r.tasks[task]["text"]
        assert r.result(task)["changed"] is True and OUR_WARNING not in text, r.result(task)
        assert f"cannot write into the binary cache {ROOT_CACHE}: plain transfer" in text, text[-3000:]
        assert r.tasks[task]["puts"] >= 2
    assert r.tasks["cached"]["execs"] >= 2 and r.tasks["not cached"]["execs"] >= 3
    assert "ap-rocache2" in nets(host)
    assert "aprovt0" in host.exec(["ip", "-br", "link", "show", "dev", "aprovt0"]).stdout
