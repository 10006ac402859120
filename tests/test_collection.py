"""The foundation end to end: the collection tarball as users get it (documentation stubs in
plugins/modules/, static binaries per architecture in files/bin/, action plugins), ansible-doc
listing and rendering every module, and the protocol library driven through a real playbook by
a test-only module (never shipped)."""

import shutil
import subprocess
import tarfile

import pytest

from conftest import MODULES, ROOT, ensure_built

E2E = ROOT / "tests" / "e2e"


ARCHES = {"x86_64": "x86-64", "aarch64": "ARM aarch64"}  # uname -m -> what file(1) says


def test_tarball_layout(collection):
    """plugins/modules/ holds one documentation stub per module and nothing else; the
    binaries live in files/bin/<arch>/; one action plugin per module."""
    with tarfile.open(collection["tarball"]) as t:
        members = {m.name: m for m in t.getmembers()}
    names = list(members)
    in_modules = sorted(n for n in names if n.startswith("plugins/modules/"))
    assert in_modules == sorted(f"plugins/modules/{m}.py" for m in MODULES), in_modules
    for m in MODULES:
        assert f"plugins/action/{m}.py" in members
        for arch in ARCHES:
            binary = members[f"files/bin/{arch}/{m}"]
            assert binary.isfile() and binary.mode & 0o777 == 0o755, (m, arch, oct(binary.mode))
    assert "plugins/plugin_utils/binary_module.py" in members
    assert not [n for n in names if n.endswith(".rs") or n.startswith(("target", "modules", "tests"))], names
    assert not [n for n in names if "kvmnet_test" in n], names
    assert "meta/runtime.yml" in members and "MANIFEST.json" in members
    assert "changelogs/changelog.yaml" in members


def test_shipped_binaries_are_static_for_each_arch(collection):
    base = collection["path"] / "ansible_collections" / "kvmnet" / "network" / "files" / "bin"
    for arch, word in ARCHES.items():
        for m in MODULES:
            out = subprocess.run(["file", "-b", str(base / arch / m)], capture_output=True, text=True,
                                 check=True).stdout
            assert "statically linked" in out or "static-pie linked" in out, (arch, m, out)
            assert word in out, (arch, m, out)


def test_ansible_doc_lists_every_module(collection):
    p = subprocess.run(["ansible-doc", "-l", "kvmnet.network"], env=collection["env"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    listed = sorted(line.split()[0] for line in p.stdout.splitlines() if line.strip())
    assert listed == sorted(f"kvmnet.network.{m}" for m in MODULES), p.stdout + p.stderr


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(collection, module):
    p = subprocess.run(["ansible-doc", f"kvmnet.network.{module}"], env=collection["env"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"kvmnet.network.{module}" in p.stdout
    assert "EXAMPLES" in p.stdout and "RETURN VALUES" in p.stdout, p.stdout[-2000:]


@pytest.fixture
def play_dir(tmp_path):
    """A playbook directory whose library/ holds the test-only module."""
    lib = tmp_path / "library"
    lib.mkdir()
    shutil.copy(ensure_built("kvmnet_test"), lib / "kvmnet_test")
    for f in E2E.glob("*.yml"):
        shutil.copy(f, tmp_path / f.name)
    work = tmp_path / "work"
    work.mkdir()
    return tmp_path


def playbook(collection, play_dir, name, *extra):
    # The test module only touches files under /tmp; pytest's tmp_path is there.
    assert str(play_dir).startswith("/tmp/")
    return subprocess.run(
        ["ansible-playbook", "-i", "localhost,", name, "-e", f"workdir={play_dir / 'work'}",
         "-e", "ansible_python_interpreter=" + str(ROOT / ".venv" / "bin" / "python"), *extra],
        cwd=play_dir, env=collection["env"], capture_output=True, text=True, timeout=300)


def test_protocol_under_real_ansible_playbook(collection, play_dir):
    # -vvv shows each result's invocation.module_args: the secret must be masked there.
    p = playbook(collection, play_dir, "protocol_play.yml", "-vvv")
    assert p.returncode == 0, p.stdout + p.stderr
    recap = p.stdout.split("PLAY RECAP", 1)[1]
    assert "failed=0" in recap and "ignored=3" in recap, recap
    assert (play_dir / "work" / "managed.txt").read_text() == "hello"
    assert "hunter2" not in p.stdout
    assert '"secret": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in p.stdout
    assert '"mac": "52:54:00:AA:00:01"' in p.stdout, "alias mac_address reported as mac"


def test_check_and_diff_from_the_command_line(collection, play_dir):
    p = playbook(collection, play_dir, "check_diff_play.yml", "--check", "--diff")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "+line one" in p.stdout, p.stdout
    assert not (play_dir / "work" / "never.txt").exists()
    # The same play for real creates the file (with --diff: the play's assertions read r.diff,
    # which a real run reports too).
    p = playbook(collection, play_dir, "check_diff_play.yml", "--diff")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "+line one" in p.stdout and "changed=1" in p.stdout.split("PLAY RECAP", 1)[1], p.stdout
    assert (play_dir / "work" / "never.txt").read_text() == "line one"
