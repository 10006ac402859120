"""The documentation stubs (plugins/modules/X.py) against the modules themselves: every option a
module accepts is documented, with the type, elements, required-ness, default, choices, aliases
and sub-options the module's Rust spec declares (`MODULE --spec`), and nothing else is; every
example is a valid task of that module. The stubs hold nothing but
DOCUMENTATION, EXAMPLES and RETURN (ansible-test's validate-modules takes them as docs only).
For all four modules what tests/test_libvirt_net.py checked on the sidecar libvirt_net.yml."""

import ast
import json
import subprocess

import pytest
import yaml

from conftest import MODULES, ROOT, ensure_built


def stub(module: str) -> dict:
    tree = ast.parse((ROOT / "plugins" / "modules" / f"{module}.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            values[node.targets[0].id] = node.value.value
        else:  # beside the three strings, only a `from __future__` import
            assert isinstance(node, ast.ImportFrom) and node.module == "__future__", ast.dump(node)
    assert set(values) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, set(values)
    return {"DOCUMENTATION": yaml.safe_load(values["DOCUMENTATION"]), "EXAMPLES": yaml.safe_load(values["EXAMPLES"]),
            "RETURN": yaml.safe_load(values["RETURN"])}


def rust_spec(module: str) -> dict:
    """The module's options as its binary declares them (`MODULE --spec`: the Rust spec is
    the one declaration of every option; the stub must say the same)."""
    out = subprocess.run([str(ensure_built(module)), "--spec"], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)


def compare(doc: dict, spec: dict, path: str = "") -> list:
    """Differences between documented options and the spec: names, type, elements,
    required, default, choices, aliases, sub-options."""
    problems = []
    if sorted(doc) != sorted(spec):
        return [f"{path or 'options'}: documented {sorted(doc)}, the module has {sorted(spec)}"]
    for name, want in spec.items():
        got = doc[name] or {}
        where = f"{path}{name}"
        checks = {
            "type": (got.get("type", "str"), want["type"]),
            "elements": (got.get("elements"), want.get("elements")),
            "required": (bool(got.get("required", False)), want["required"]),
            "default": (got.get("default"), want.get("default")),
            "choices": (got.get("choices"), want.get("choices")),
            "aliases": (sorted(got.get("aliases", [])), sorted(want.get("aliases", []))),
            "no_log": (bool(got.get("no_log", False)), bool(want.get("no_log", False))),
        }
        for key, (d, w) in checks.items():
            if d != w:
                problems.append(f"{where}.{key}: documented {d!r}, the module has {w!r}")
        if "options" in want or "suboptions" in got:
            problems += compare(got.get("suboptions", {}), want.get("options", {}), f"{where}.")
    return problems


@pytest.mark.parametrize("module", MODULES)
def test_stub_documents_exactly_the_options_of_the_module(module):
    doc = stub(module)
    assert doc["DOCUMENTATION"]["module"] == module
    opts = doc["DOCUMENTATION"]["options"]
    assert compare(opts, rust_spec(module)) == []
    ours = [t[f"kvmnet.network.{module}"] for t in doc["EXAMPLES"] if f"kvmnet.network.{module}" in t]
    assert ours, "no example uses the module"
    for body in ours:  # (other examples show what to do with the result: debug and the like)
        assert set(body) <= set(opts) | {a for o in opts.values() for a in o.get("aliases", [])}, body
    for key in ("msg", "changed"):
        assert key in doc["RETURN"], key
