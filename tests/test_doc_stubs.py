"""The documentation stubs (plugins/modules/X.py) against the modules themselves: every option a
module accepts is documented and nothing else is (the binary names its options when given one
it does not know), and every example is a valid task of that module. The stubs hold nothing but
DOCUMENTATION, EXAMPLES and RETURN (ansible-test's validate-modules takes them as docs only).
For all four modules what tests/test_libvirt_net.py checked on the sidecar libvirt_net.yml."""

import ast
import re

import pytest
import yaml

from conftest import MODULES, ROOT, run_module


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


@pytest.mark.parametrize("module", MODULES)
def test_stub_documents_exactly_the_options_of_the_module(lab, module):
    doc = stub(module)
    assert doc["DOCUMENTATION"]["module"] == module
    opts = doc["DOCUMENTATION"]["options"]
    r = run_module(lab, module, {"no_such_option": 1})
    assert r["failed"] is True
    listed = r["msg"].split("Supported parameters include: ")[1].rstrip(".")
    aliases = {m.group(1): sorted(m.group(2).split(", "))
               for m in re.finditer(r"(\w+) \(aliases: ([^)]*)\)", listed)}
    supported = re.sub(r" \(aliases: [^)]*\)", "", listed).split(", ")
    assert sorted(supported) == sorted(opts), (supported, sorted(opts))
    assert aliases == {o: sorted(v["aliases"]) for o, v in opts.items() if v.get("aliases")}, aliases
    ours = [t[f"kvmnet.network.{module}"] for t in doc["EXAMPLES"] if f"kvmnet.network.{module}" in t]
    assert ours, "no example uses the module"
    for body in ours:  # (other examples show what to do with the result: debug and the like)
        assert set(body) <= set(opts) | {a for o in opts.values() for a in o.get("aliases", [])}, body
    for key in ("msg", "changed"):
        assert key in doc["RETURN"], key
