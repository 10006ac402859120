"""The foundation end to end: the collection tarball as users get it, its modules run by
FQCN under a real ansible-playbook, ansible-doc for every module, and the protocol
library driven through a real playbook by a test-only module (never shipped)."""

import shutil
import subprocess
import tarfile

import pytest

from conftest import MODULES, ROOT, ensure_built

E2E = ROOT / "tests" / "e2e"


def test_tarball_holds_binaries_and_docs_only(collection):
    with tarfile.open(collection["tarball"]) as t:
        members = {m.name: m for m in t.getmembers()}
    for m in MODULES:
        binary = members[f"plugins/modules/{m}"]
        assert binary.isfile() and binary.mode & 0o777 == 0o755, (m, oct(binary.mode))
        # documentation beside it: a sidecar .yml or a .py stub
        assert f"plugins/modules/{m}.yml" in members or f"plugins/modules/{m}.py" in members, m
    names = list(members)
    assert not [n for n in names if n.endswith(".rs") or n.startswith(("target", "modules", "tests"))], names
    assert not [n for n in names if "kvmnet_test" in n], names
    assert "meta/runtime.yml" in members and "MANIFEST.json" in members


def test_shipped_binaries_are_static(collection):
    base = collection["path"] / "ansible_collections" / "kvmnet" / "network" / "plugins" / "modules"
    for m in MODULES:
        out = subprocess.run(["file", "-b", str(base / m)], capture_output=True, text=True, check=True).stdout
        assert "statically linked" in out or "static-pie linked" in out, (m, out)
        assert "x86-64" in out, out


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(collection, module):
    p = subprocess.run(["ansible-doc", f"kvmnet.network.{module}"], env=collection["env"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"kvmnet.network.{module}" in p.stdout
    assert "EXAMPLES" in p.stdout and "RETURN VALUES" in p.stdout or "RETURN" in p.stdout


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
    # The same play for real creates the file.
    p = playbook(collection, play_dir, "check_diff_play.yml")
    assert p.returncode != 0 or (play_dir / "work" / "never.txt").read_text() == "line one"
