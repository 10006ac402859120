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


def test_galaxy_importer_lists_every_module_with_its_documentation(collection, tmp_path):
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
    print("galaxy-importer modules:", modules)
    assert modules == sorted(MODULES), modules
    for m in MODULES:
        docs = contents[("module", m)]["doc_strings"]
        assert docs["doc"]["module"] == m and docs["doc"]["short_description"], docs
        assert docs["doc"]["options"] and docs["return"] and docs["examples"].strip(), m
    assert sorted(name for kind, name in contents if kind == "action") == sorted(MODULES)
    assert "No changelog found" not in p.stdout + p.stderr


def test_ansible_test_sanity_passes():
    """Every sanity test of the pinned ansible-core on the installed tarball (tests/sanity)."""
    p = subprocess.run([str(ROOT / "tests" / "sanity")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]
    ran = re.findall(r'^Running sanity test "([^"]+)"', out, flags=re.M)
    for test in ("validate-modules", "ansible-doc", "pylint", "pep8", "import", "compile", "yamllint",
                 "changelog", "runtime-metadata", "action-plugin-docs", "shebang"):
        assert test in ran, (test, ran)
    assert "FATAL" not in out and "ERROR:" not in out, out[-4000:]


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
    assert "ansible-core>=2.19,<2.20" in containerfile and "COPY _build /build" in containerfile
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
