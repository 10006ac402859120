"""What the distribution tools make of the collection tarball: Galaxy's import pipeline
(galaxy-importer, in its own virtualenv) lists every module with its documentation,
ansible-test sanity passes (tests/sanity), the changelog is antsibull-changelog's and names
the version being built, and the execution environment definition gives ansible-builder a
build context whose collection requirement resolves to our tarball."""

import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import MODULES, ROOT

IMPORTER = ROOT / ".venv-importer" / "bin"


def galaxy_version() -> str:
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]


# galaxy-importer's module list, for the run's log (pytest -q shows no test's output; the line is
# printed past the capture, and kept in this file)
IMPORTER_MODULES = "/tmp/kvmnet-galaxy-importer-modules.txt"


def test_galaxy_importer_lists_every_module_with_its_documentation(collection, tmp_path, capsys):
    if not (IMPORTER / "python").exists():
        pytest.fail("galaxy-importer's virtualenv is missing: run tests/setup.sh")
    env = dict(os.environ, PATH=f"{IMPORTER}:{os.environ['PATH']}")
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    p = subprocess.run([str(IMPORTER / "python"), "-m", "galaxy_importer.main", str(collection["tarball"])],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ansible-doc not found" not in p.stdout + p.stderr
    result = json.loads((tmp_path / "importer_result.json").read_text())
    contents = {(c["content_type"], c["content_name"]): c for c in result["docs_blob"]["contents"]}
    modules = sorted(name for kind, name in contents if kind == "module")
    line = f"galaxy-importer modules: {' '.join(modules)}"
    with open(IMPORTER_MODULES, "w") as f:
        f.write(line + "\n")
    with capsys.disabled():
        print(f"\n{line} (also in {IMPORTER_MODULES})")
    assert modules == sorted(MODULES), modules
    for m in MODULES:
        docs = contents[("module", m)]["doc_strings"]
        assert docs["doc"]["module"] == m and docs["doc"]["short_description"], docs
        assert docs["doc"]["options"] and docs["return"] and docs["examples"].strip(), m
    assert sorted(name for kind, name in contents if kind == "action") == sorted(MODULES)
    assert "No changelog found" not in p.stdout + p.stderr


# The sanity tests that find nothing of ours to check (the README's list, and why): no
# __init__.py files (empty-init), no PowerShell (pslint), no shell scripts (shellcheck).
NOT_APPLICABLE = ["empty-init", "pslint", "shellcheck"]


def sanity(*args) -> str:
    p = subprocess.run([str(ROOT / "tests" / "sanity"), *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    return out


def test_ansible_test_sanity_passes():
    """Every sanity test of the pinned ansible-core (as `--list-tests` names them) runs on the
    installed tarball (tests/sanity) and passes; none is skipped, and the only ones with nothing
    to check are the README's. The file-based ones saw every module stub."""
    listed = [t for t in sanity("--list-tests").splitlines() if re.fullmatch(r"[a-z0-9-]+", t)]
    assert len(listed) >= 20 and "validate-modules" in listed, listed
    out = sanity("-v")
    ran = re.findall(r'^Running sanity test "([^"]+)"', out, flags=re.M)
    assert sorted(ran) == sorted(listed), (ran, listed)
    nothing = re.findall(r'^Running sanity test "([^"]+)"[^\n]*\nNo tests applicable\.$', out, flags=re.M)
    assert sorted(nothing) == NOT_APPLICABLE, nothing
    assert "Skipping" not in out and "FATAL" not in out and "ERROR:" not in out, out[-4000:]
    stubs = [f"plugins/modules/{m}.py" for m in sorted(MODULES)]
    for tool in ("validate-modules/validate.py", "pycodestyle"):
        cmd = next(line for line in out.splitlines() if line.startswith("Run command") and tool in line)
        assert all(stub in cmd.split() for stub in stubs), (tool, cmd)
    # pylint saw every Python file: the action plugins and plugin_utils, and the stubs
    assert f"Checking {len(MODULES) + 1} file(s) in context 'collection'" in out
    assert f"Checking {len(MODULES)} file(s) in context 'modules'" in out
    assert f"Read {len(MODULES)} sanity test ignore line(s) for Ansible 2.19" in out


def test_changelog_is_antsibull_changelogs_and_names_this_version():
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "antsibull-changelog"), "lint"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0 and not p.stdout.strip(), p.stdout + p.stderr
    changes = yaml.safe_load((ROOT / "changelogs" / "changelog.yaml").read_text())
    version = galaxy_version()
    assert version in changes["releases"], (version, list(changes["releases"]))
    modules = sorted(m["name"] for r in changes["releases"].values() for m in r.get("modules", []))
    assert modules == sorted(MODULES)
    assert f"v{version}".replace(".", "\\.") in (ROOT / "CHANGELOG.md").read_text()


def test_execution_environment_build_context(collection, tmp_path):
    """ansible-builder create (no container engine here to build the image); then the galaxy
    stage's collection install, run against the context's _build directory as /build."""
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    tarball = collection["tarball"].name
    assert tarball == f"kvmnet-network-{galaxy_version()}.tar.gz"
    assert ee["additional_build_files"][0]["src"] == tarball
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-builder"), "create", "-f",
                        str(ROOT / "execution-environment.yml"), "-c", str(tmp_path / "context")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    context = tmp_path / "context"
    containerfile = next(context.glob("[CD]*file")).read_text()
    # ansible-core, and ansible-runner: AWX / Automation Platform start each job as
    # `ansible-runner worker` inside the image
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.20 ansible-runner"' in containerfile, containerfile
    assert "COPY _build /build" in containerfile
    build = context / "_build"
    assert (build / "collections" / tarball).is_file()
    req = (build / "requirements.yml").read_text().replace("/build/", f"{build}/")
    (build / "requirements-here.yml").write_text(req)
    dest = tmp_path / "usr-share-ansible-collections"
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-galaxy"), "collection", "install", "-r",
                        str(build / "requirements-here.yml"), "--collections-path", str(dest)],
                       cwd=build, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    installed = dest / "ansible_collections" / "kvmnet" / "network"
    assert (installed / "plugins" / "action" / "nm_bridge.py").is_file()
    assert (installed / "files" / "bin" / "aarch64" / "nm_bridge").is_file()
