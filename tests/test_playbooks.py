"""The shipped playbooks without a lab: they parse against the example fleet inventory with
the built collection (every module resolves by FQCN), the example inventory puts hosts in the
groups site.yml targets, and the variables an inventory sets reach the modules (any level
overrides the playbooks' defaults). The playbooks' behaviour on real hosts is tested by the
molecule scenarios (tests/molecule-all)."""

import json
import subprocess

import pytest

from conftest import ROOT

PLAYBOOKS = ROOT / "playbooks"
INVENTORY = PLAYBOOKS / "inventory"


def ansible(collection, *argv, check=True):
    p = subprocess.run(list(argv), cwd=ROOT, env=collection["env"], capture_output=True,
                       text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.mark.parametrize("playbook", ["bridge.yml", "private.yml", "direct_bridge.yml", "site.yml"])
def test_syntax_with_the_built_collection(collection, playbook):
    ansible(collection, "ansible-playbook", "--syntax-check", "-i", str(INVENTORY),
            str(PLAYBOOKS / playbook))


def test_a_misspelt_module_fails_the_syntax_check(collection, tmp_path):
    # the check above is only worth something if an unresolvable module makes it fail
    bad = tmp_path / "bad.yml"
    bad.write_text((PLAYBOOKS / "bridge.yml").read_text().replace(
        "kvmnet.network.nm_bridge:", "kvmnet.network.nm_bridgex:"))
    p = ansible(collection, "ansible-playbook", "--syntax-check", "-i", str(INVENTORY), str(bad),
                check=False)
    assert p.returncode != 0


def test_site_targets_the_example_groups(collection):
    p = ansible(collection, "ansible-playbook", "--list-hosts", "-i", str(INVENTORY),
                str(PLAYBOOKS / "site.yml"))
    plays = p.stdout.split("play #")[1:]
    hosts = [sorted(line.strip() for line in blk.split("hosts (", 1)[1].splitlines()[1:]
                    if line.strip()) for blk in plays]
    assert hosts == [
        ["kvm1.example.org", "kvm2.example.org"],
        ["kvm3.example.org"],
        ["kvm2.example.org", "kvm3.example.org"],
    ], p.stdout


def test_inventory_variables_reach_the_modules(collection, tmp_path):
    """group_vars/all (the lowest inventory level) must override the playbook's defaults, and
    unset variables must give the documented defaults. Checked by running bridge.yml's
    variable expressions for a local host through ansible's debug module."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.ini").write_text("[kvm_hosts]\nh1 ansible_connection=local\nh2 ansible_connection=local\n")
    (inv / "group_vars" / "all.yml").write_text("kvmnet_nic: eth7\n")
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "h2.yml").write_text("kvmnet_bridge_nic: eth9\nkvmnet_bridge_name: br5\n")
    # the play of bridge.yml with its tasks replaced by one that prints its computed variables
    text = (PLAYBOOKS / "bridge.yml").read_text().split("  tasks:\n")[0]
    play = tmp_path / "vars.yml"
    play.write_text(text + "  become: false\n  tasks:\n    - name: Show\n"
                    "      ansible.builtin.debug:\n"
                    "        msg: \"{{ {'nic': _nic, 'bridge': _bridge, 'network': _network,"
                    " 'uri': _uri} | to_json }}\"\n")
    env = dict(collection["env"], ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_BECOME="False")
    p = subprocess.run(["ansible-playbook", "-i", str(inv), str(play)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    tasks = json.loads(p.stdout)["plays"][0]["tasks"]
    got = {h: json.loads(r["msg"]) for h, r in tasks[0]["hosts"].items()}
    assert got["h1"] == {"nic": "eth7", "bridge": "br0", "network": "host-bridge",
                         "uri": "qemu:///system"}
    assert got["h2"] == {"nic": "eth9", "bridge": "br5", "network": "host-bridge",
                         "uri": "qemu:///system"}
