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


def test_a_misspelt_role_fails_the_syntax_check(collection, tmp_path):
    # the check above is only worth something if an unresolvable name makes it fail
    bad = tmp_path / "bad.yml"
    bad.write_text((PLAYBOOKS / "bridge.yml").read_text().replace(
        "role: kvmnet.network.guest_lan", "role: kvmnet.network.guest_lanx"))
    assert bad.read_text() != (PLAYBOOKS / "bridge.yml").read_text()
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
    unset variables must give the documented defaults. Checked by running the variables
    bridge.yml hands the guest_lan role for a local host through ansible's debug module."""
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.ini").write_text("[kvm_hosts]\nh1 ansible_connection=local\nh2 ansible_connection=local\n")
    (inv / "group_vars" / "all.yml").write_text("kvmnet_nic: eth7\n")
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "h2.yml").write_text("kvmnet_bridge_nic: eth9\nkvmnet_bridge_name: br5\n")
    # the play of bridge.yml with its role replaced by a task that prints the role's variables
    text = (PLAYBOOKS / "bridge.yml").read_text().split("  roles:\n")[0]
    play = tmp_path / "vars.yml"
    play.write_text(text + "  become: false\n  tasks:\n    - name: Show\n"
                    "      ansible.builtin.debug:\n"
                    "        msg: \"{{ {'nic': guest_lan_nic, 'bridge': guest_lan_bridge,"
                    " 'network': guest_lan_network, 'uri': guest_lan_uri,"
                    " 'method': guest_lan_method} | to_json }}\"\n")
    env = dict(collection["env"], ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_BECOME="False")
    p = subprocess.run(["ansible-playbook", "-i", str(inv), str(play)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    tasks = json.loads(p.stdout)["plays"][0]["tasks"]
    got = {h: json.loads(r["msg"]) for h, r in tasks[0]["hosts"].items()}
    assert got["h1"] == {"nic": "eth7", "bridge": "br0", "network": "host-bridge",
                         "uri": "qemu:///system", "method": "bridge"}
    assert got["h2"] == {"nic": "eth9", "bridge": "br5", "network": "host-bridge",
                         "uri": "qemu:///system", "method": "bridge"}


@pytest.mark.parametrize("playbook,extra,error", [
    ("private.yml", {"kvmnet_private_mode": "bogus"},
     "value of guest_lan_mode must be one of: bridge, private, vepa, passthrough, passthru, got: bogus"),
    ("bridge.yml", {"kvmnet_bridge_stp": "maybe"}, "guest_lan_stp"),
    ("bridge.yml", {"kvmnet_bridge_ipv4": "dhcp"}, "guest_lan_ipv4"),
    ("direct_bridge.yml", {"kvmnet_direct_guests": {"domain": "vm1"}}, "guest_lan_guests"),
    ("direct_bridge.yml", {"kvmnet_direct_guests": [{"name": "vm1"}]},
     "each entry is a domain name or a mapping with domain"),
])
def test_bad_variables_fail_before_anything_runs(collection, tmp_path, playbook, extra, error):
    """The role's argument spec (and its check of the guests) stops the play before its first
    module task: nothing runs on the host (here: this machine, in check mode besides)."""
    inv = tmp_path / "hosts.ini"
    inv.write_text("[kvm_hosts]\nh1 ansible_connection=local\n")
    env = dict(collection["env"], ANSIBLE_BECOME="False")
    p = subprocess.run(["ansible-playbook", "--check", "-i", str(inv), str(PLAYBOOKS / playbook),
                        "-e", json.dumps(extra), "-e", "ansible_become=false"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0, p.stdout
    assert error in p.stdout, p.stdout
    recap = p.stdout.split("PLAY RECAP", 1)[1]
    assert "changed=0" in recap and "failed=1" in recap, recap
    assert "TASK [kvmnet.network.guest_lan : Bridge with" not in p.stdout
    assert "TASK [kvmnet.network.guest_lan : Guest interfaces" not in p.stdout


def test_role_spec_and_defaults_agree():
    """meta/argument_specs.yml and defaults/main.yml describe the same variables: every default
    is an option, a default the spec states is the one the role uses, and every variable carries
    the role's prefix (ansible-lint's production profile wants it)."""
    import yaml

    role = ROOT / "roles" / "guest_lan"
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    assert all(name.startswith("guest_lan_") for name in options), sorted(options)
    assert set(defaults) <= set(options), set(defaults) - set(options)
    for name, opt in options.items():
        if "default" in opt:
            assert defaults.get(name) == opt["default"], name
        elif name in defaults:  # a default that depends on the method: said in the description
            assert "{{" in str(defaults[name]) and "default" in " ".join(opt["description"]), name
    assert options["guest_lan_method"]["required"] and "guest_lan_method" not in defaults


def test_role_documentation_renders(collection):
    p = subprocess.run(["ansible-doc", "-t", "role", "kvmnet.network.guest_lan"],
                       env=collection["env"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "guest_lan_method" in p.stdout and "direct_bridge" in p.stdout
