"""Shared pytest fixtures: built module binaries, the lab (real NetworkManager and
libvirtd in namespaces, see tests/lab/), running a module binary inside a lab exactly as
Ansible does (binary + JSON args file), and an installed copy of the collection for
real ansible-playbook runs."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "lab"))

TARGET = "x86_64-unknown-linux-musl"
MODULES = ["nm_bridge", "macvtap_link", "libvirt_net", "domain_iface", "net_info"]
VENV_BIN = ROOT / ".venv" / "bin"


def bin_dir() -> Path:
    return Path(os.environ.get("KVMNET_BIN_DIR", ROOT / "target" / TARGET / "release"))


_built: set = set()


def ensure_built(package: str) -> Path:
    """Build one package's release (static, musl) binary once per session, unless
    KVMNET_BIN_DIR points at ready binaries. Per package, so that one crate being edited
    does not stop the tests of another."""
    if "KVMNET_BIN_DIR" not in os.environ and package not in _built:
        subprocess.run(["cargo", "build", "-q", "--release", "--target", TARGET, "-p", package],
                       cwd=ROOT, check=True)
        _built.add(package)
    return bin_dir() / package


@pytest.fixture(scope="session")
def binaries() -> Path:
    return bin_dir()


COUNTED_TOOLS = {"nmcli": "/usr/bin/nmcli", "ip": "/usr/sbin/ip", "virsh": "/usr/bin/virsh"}


def run_module(lab, module: str, args: dict, check: bool = False, diff: bool = False,
               no_log: bool = False, timeout: float = 180, count: bool = False,
               env: dict | None = None) -> dict:
    """Run module binary `module` inside `lab` the way Ansible runs a binary module:
    `<binary> <args file>`, the args file holding the options and `_ansible_*` keys.
    Returns the parsed result with `_rc` (exit status) and `_stderr` added. Fails the test
    unless stdout is exactly one JSON object. With `count`, logging wrappers first on PATH
    record every nmcli/ip/virsh the module starts: `_spawned` lists them in order. `env`:
    more variables for the module (e.g. KVMNET_RECORD)."""
    full = dict(args)
    full.update({
        "_ansible_check_mode": check,
        "_ansible_diff": diff,
        "_ansible_no_log": no_log,
        "_ansible_verbosity": 0,
        "_ansible_module_name": f"kvmnet.network.{module}",
        "_ansible_version": "2.19.0",
    })
    with tempfile.NamedTemporaryFile("w", dir="/tmp", prefix="kvmnet-args-", suffix=".json",
                                     delete=False) as f:
        json.dump(full, f)
        path = f.name
    shims = tempfile.mkdtemp(prefix="kvmnet-shims-", dir="/tmp") if count else None
    extra = dict(env or {})
    env = dict(os.environ, **extra) if extra else None
    try:
        if shims:
            for tool, real in COUNTED_TOOLS.items():
                with open(os.path.join(shims, tool), "w") as f:
                    f.write(f'#!/bin/sh\necho {tool} >> {shims}/log\nexec {real} "$@"\n')
                os.chmod(os.path.join(shims, tool), 0o755)
            env = dict(os.environ, **extra, PATH=f"{shims}:/usr/sbin:/usr/bin:/sbin:/bin")
        p = lab.exec([str(ensure_built(module)), path], check=False, timeout=timeout, env=env)
        spawned = open(os.path.join(shims, "log")).read().split() if shims and \
            os.path.exists(os.path.join(shims, "log")) else []
    finally:
        os.unlink(path)
        if shims:
            import shutil
            shutil.rmtree(shims, ignore_errors=True)
    try:
        result = json.loads(p.stdout)
    except json.JSONDecodeError as e:  # pragma: no cover - the assertion is the point
        raise AssertionError(f"{module} did not print one JSON object ({e}):\n"
                             f"stdout={p.stdout!r}\nstderr={p.stderr!r}")
    assert isinstance(result, dict), p.stdout
    result["_rc"] = p.returncode
    result["_stderr"] = p.stderr
    if count:
        result["_spawned"] = spawned
    assert p.returncode == (1 if result.get("failed") else 0), result
    return result


@pytest.fixture(scope="module")
def lab(request, binaries):
    """One lab host for a whole test file (named after it), torn down even on failure."""
    from kvmlab import Lab

    base = request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")
    name = "t" + "".join(c for c in base if c.isalnum())[:7]
    Lab(name).down()  # a lab left by an interrupted run would make up() refuse the name
    lab = Lab.up(name)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    if not (VENV_BIN / "ansible-playbook").exists():
        pytest.fail("the test virtualenv is missing: run tests/setup.sh first")
    return VENV_BIN


@pytest.fixture(scope="session")
def collection(tmp_path_factory, venv_bin) -> dict:
    """Build the collection tarball with the project's one build entry point and install
    it into a temporary collections path. Returns the environment for ansible-* commands."""
    subprocess.run(["make", "collection"], cwd=ROOT, check=True)
    tarballs = sorted(ROOT.glob("kvmnet-network-*.tar.gz"))
    assert tarballs, "make collection made no tarball"
    path = tmp_path_factory.mktemp("collections")
    subprocess.run([str(venv_bin / "ansible-galaxy"), "collection", "install", "--force",
                    "-p", str(path), str(tarballs[-1])], check=True)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(path),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "PATH": f"{venv_bin}:{env.get('PATH', '')}",
    })
    return {"path": path, "env": env, "tarball": tarballs[-1]}
