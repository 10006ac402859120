"""The action plugins (plugins/plugin_utils/binary_module.py) through real ansible-playbook over
ssh to a lab host: ssh round trips per task counted from -vvv (one per task once the binary is
cached, two for the first task of a module on a host, five or more for the same binary run as a
plain binary module), the cache private to the user the module runs as (with become through
sudo: root's), a cache planted or made writable by another local user never run, a binary that
differs sent again, a host whose cache cannot be made served by the plain transfer, check mode,
diff, no_log, ansible_remote_tmp, two workers filling one cache at once, and async refused."""

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


def test_two_workers_fill_one_cache_at_once(collection, host, tmp_path):
    """Two inventory names for the same lab host, forks 2: both send the binary at the same
    time into one cache; each write is atomic (own temporary file, checked, renamed)."""
    import kvmlab

    rt = remote_tmp("forks")
    text = kvmlab.inventory_text([host])
    line = next(ln for ln in text.splitlines() if ln.startswith(host.name + " "))
    text = text.replace(line, line.replace(host.name, "alias-a", 1) + "\n" + line.replace(host.name, "alias-b", 1))
    tasks = [{"name": "both", "kvmnet.network.domain_iface": {"domain": "nope-no-such-guest", "mac": "52:54:00:00:00:01",
                                                               "state": "absent"}}]
    r = play(collection, [host], tasks, tmp_path, host_vars={"ansible_remote_tmp": rt}, hosts_ini=text, forks=2)
    results = r.tasks["both"]["results"]
    assert set(results) == {"alias-a", "alias-b"}, r.out[-5000:]
    # the module itself ran on both (and answered about the missing guest)
    for res in results.values():
        assert "nope-no-such-guest" in res["msg"], res
    assert OUR_WARNING not in r.tasks["both"]["text"]
    digest = sha256(BIN / "x86_64" / "domain_iface")
    assert cache_listing(host, f"{rt}/{CACHE}") == {digest: (0, "700", digest)}


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


@pytest.fixture
def sudo_user(host):
    """User kvmop in the lab: the lab's ssh key, passwordless sudo, and an sshd of this test on
    port 2222 (the lab's own sshd reads its authorized_keys from root's state dir, unreadable for
    other users); all inside the lab, gone with it."""
    if not shutil.which("sudo"):
        pytest.fail("sudo is not installed (tests/setup.sh installs it)")
    if host.exec(["id", "-u", "kvmop"], check=False).returncode != 0:
        host.exec(["useradd", "-m", "-s", "/bin/sh", "-p", "*", "kvmop"])
        host.exec(["sh", "-c", "install -d -o kvmop -g kvmop -m 700 ~kvmop/.ssh && "
                               f"install -o kvmop -g kvmop -m 600 {host.state_dir}/id_ed25519.pub ~kvmop/.ssh/authorized_keys && "
                               "echo 'kvmop ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/kvmop && chmod 440 /etc/sudoers.d/kvmop"])
        conf = "/run/kvmnet-test-sshd.conf"  # the lab's private /run
        host.exec(["sh", "-c", f"cat > {conf} <<EOF\nListenAddress {host.address}:2222\n"
                               f"HostKey {host.state_dir}/ssh_host_ed25519_key\nPubkeyAuthentication yes\n"
                               "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nUseDNS no\n"
                               "PidFile none\nEOF"])
        host.exec(["/usr/sbin/sshd", "-f", conf])
    return "kvmop"


def test_become_with_sudo_uses_roots_private_cache(collection, host, tmp_path, sudo_user):
    import kvmlab

    text = kvmlab.inventory_text([host]).replace("ansible_user=root", f"ansible_user={sudo_user}")
    text = text.replace(f"{host.name} ansible_host=", f"{host.name} ansible_port=2222 ansible_host=", 1)
    # remote_tmp stays Ansible's default, ~/.ansible/tmp: the cache goes to root's home
    host.exec(["rm", "-rf", f"/root/.ansible/tmp/{CACHE}"])
    tasks = [net_task("sudo first", "ap-sudo"), net_task("sudo again", "ap-sudo"),
             {"name": "whoami", "ansible.builtin.raw": "id -un"}]
    r = play(collection, [host], tasks, tmp_path, hosts_ini=text, play_vars={"become": True})
    assert r.rc == 0, r.out[-5000:]
    assert "sudo -H -S -n" in r.tasks["sudo first"]["text"]
    assert r.result("sudo first")["changed"] is True and r.result("sudo again")["changed"] is False
    assert r.tasks["sudo again"]["execs"] == 1
    digest = sha256(BIN / "x86_64" / "libvirt_net")
    assert cache_listing(host, f"/root/.ansible/tmp/{CACHE}") == {digest: (0, "700", digest)}
    assert host.exec(["test", "-e", f"/home/{sudo_user}/.ansible/tmp/{CACHE}"], check=False).returncode != 0
