"""kvmnet.network.macvtap_link against a real lab (kernel macvtap, NetworkManager 1.42):
the tutorial's method 2 as a runtime link, then persistent through a NetworkManager
profile. The tests share one lab and run in order; each states the state it starts from."""

import json
import time

from conftest import run_module

MOD = "macvtap_link"
METHOD2 = {"name": "macvtap0", "link": "ens32", "mode": "private"}

def links(lab) -> dict:
    out = lab.exec(["ip", "-j", "-d", "link", "show"]).stdout
    return {l["ifname"]: l for l in json.loads(out)}

def kernel(lab, name="macvtap0"):
    """(kind, parent, mode, mac, up, ifindex) of a link as the kernel has it, or None."""
    l = links(lab).get(name)
    if l is None:
        return None
    info = l.get("linkinfo", {})
    return {
        "kind": info.get("info_kind"),
        "parent": l.get("link"),
        "mode": info.get("info_data", {}).get("mode"),
        "mac": l["address"],
        "up": "UP" in l["flags"],
        "ifindex": l["ifindex"],
    }

def profiles(lab) -> list:
    """NetworkManager's macvlan profiles as (uuid, name, active device)."""
    out = lab.exec(["nmcli", "-t", "-f", "UUID,NAME,TYPE,DEVICE", "con", "show"]).stdout
    rows = [l.split(":") for l in out.splitlines() if l]
    return [(r[0], r[1], r[3]) for r in rows if r[2] == "macvlan"]

def prop(lab, uuid, field):
    return lab.exec(["nmcli", "-g", field, "con", "show", uuid]).stdout.strip()

def snapshot(lab):
    """Everything the module could change: links (minus counters) and NM profiles."""
    keep = ("ifname", "ifindex", "link", "address", "master")
    # Carrier comes and goes on its own (a fresh lab's virbr0); UP is what modules set.
    ls = {n: ({k: l.get(k) for k in keep}, "UP" in l["flags"],
              l.get("linkinfo", {}).get("info_data", {}).get("mode"))
          for n, l in links(lab).items()}
    return ls, lab.exec(["nmcli", "-t", "-f", "UUID,NAME,DEVICE", "con", "show"]).stdout

def run(lab, args, **kw):
    return run_module(lab, MOD, args, **kw)

def test_bad_input_fails_clearly_and_changes_nothing(lab):
    before = snapshot(lab)
    cases = [
        ({**METHOD2, "name": "macvtap-name-too-long"}, "option 'name'"),
        ({**METHOD2, "name": "mac/vtap0"}, "option 'name'"),
        ({**METHOD2, "mode": "bogus"}, "option 'mode': value 'bogus' is not one of"),
        ({"name": "macvtap0", "mode": "private"}, "missing: link"),
        ({"name": "macvtap0", "link": "ens32"}, "missing: mode"),
        ({**METHOD2, "mac": "52:54:00:zz:00:01"}, "option 'mac'"),
        ({**METHOD2, "persistent": True, "up": False}, "option 'up'"),
        ({**METHOD2, "link": "ens99"}, "option 'link': the parent interface 'ens99' does not exist"),
        ({**METHOD2, "name": "virbr0"}, "'virbr0' already exists and is a bridge, not a macvtap"),
        ({"name": "ens33", "state": "absent"}, "'ens33' already exists and is a"),
    ]
    for args, want in cases:
        r = run(lab, args)
        assert r["failed"] is True, (args, r)
        assert r["changed"] is False
        assert want in r["msg"], (args, r["msg"])
    assert snapshot(lab) == before

def test_check_mode_changes_nothing_and_shows_the_diff(lab):
    before = snapshot(lab)
    r = run(lab, {**METHOD2, "mac": "52:54:00:12:34:56"}, check=True, diff=True)
    assert r["changed"] is True
    assert r["commands"] == [
        ["ip", "link", "add", "link", "ens32", "name", "macvtap0", "address", "52:54:00:12:34:56",
         "type", "macvtap", "mode", "private"],
        ["ip", "link", "set", "dev", "macvtap0", "up"],
    ]
    assert r["diff"]["before"] == {}
    assert r["diff"]["after"] == {"kind": "macvtap", "parent": "ens32", "mode": "private",
                                  "mac": "52:54:00:12:34:56", "up": True}
    assert snapshot(lab) == before

def test_method2_creates_the_link_and_a_rerun_changes_nothing(lab):
    r = run(lab, METHOD2)
    assert r["changed"] is True and not r["failed"], r
    k = kernel(lab)
    assert (k["kind"], k["parent"], k["mode"], k["up"]) == ("macvtap", "ens32", "private", True)
    assert r["link"] == {"name": "macvtap0", "ifindex": k["ifindex"], "mac": k["mac"],
                         "mode": "private", "parent": "ens32", "up": True,
                         "tap_device": f"/dev/tap{k['ifindex']}"}
    lab.exec(["test", "-c", r["link"]["tap_device"]])
    again = run(lab, METHOD2)
    assert again["changed"] is False and again["commands"] == []
    assert kernel(lab) == k

def test_mode_changes_in_place(lab):
    k = kernel(lab)
    r = run(lab, {**METHOD2, "mode": "bridge"}, diff=True)
    assert r["commands"] == [["ip", "link", "set", "dev", "macvtap0", "type", "macvtap", "mode", "bridge"]]
    assert r["diff"]["before"]["mode"] == "private" and r["diff"]["after"]["mode"] == "bridge"
    assert kernel(lab) == {**k, "mode": "bridge"}, "same link (ifindex), same MAC"

def test_parent_change_recreates_keeping_the_mac(lab):
    k = kernel(lab)
    r = run(lab, {**METHOD2, "link": "ens33", "mode": "bridge"})
    assert r["changed"] is True
    n = kernel(lab)
    assert n["parent"] == "ens33" and n["mac"] == k["mac"] and n["mode"] == "bridge"
    assert n["ifindex"] != k["ifindex"]
    assert run(lab, {**METHOD2, "link": "ens33", "mode": "bridge"})["changed"] is False

def test_refuses_a_bridge_port_parent_before_changing_anything(lab):
    lab.exec(["ip", "link", "add", "mlbr9", "type", "bridge"])
    lab.exec(["ip", "link", "set", "ens32", "master", "mlbr9"])
    try:
        before = snapshot(lab)
        r = run(lab, {**METHOD2, "name": "macvtap1"})
        assert r["failed"] and "'ens32' is a port of bridge 'mlbr9'" in r["msg"] and "EBUSY" in r["msg"]
        r = run(lab, METHOD2)  # moving macvtap0 onto it: refused too, macvtap0 stays
        assert r["failed"] and "EBUSY" in r["msg"]
        assert snapshot(lab) == before
    finally:
        lab.exec(["ip", "link", "set", "ens32", "nomaster"])
        lab.exec(["ip", "link", "del", "mlbr9"])

def test_passthru_rules(lab):
    # macvtap0 is on ens33 (bridge mode): ens33 is not free for a passthrough link
    before = snapshot(lab)
    r = run(lab, {"name": "macvtap1", "link": "ens33", "mode": "passthru"})
    assert r["failed"] and "passthrough needs 'ens33' to itself" in r["msg"] and "macvtap0" in r["msg"]
    assert snapshot(lab) == before
    # macvtap0 itself may become passthrough: recreated, with the parent's address
    r = run(lab, {"name": "macvtap0", "link": "ens33", "mode": "passthru"})
    assert r["changed"] and not r["failed"], r
    k = kernel(lab)
    assert k["mode"] == "passthru" and k["mac"] == links(lab)["ens33"]["address"]
    assert r["link"]["mode"] == "passthrough"
    assert run(lab, {"name": "macvtap0", "link": "ens33", "mode": "passthrough"})["changed"] is False
    # and then nothing else may share ens33
    before = snapshot(lab)
    r = run(lab, {"name": "macvtap1", "link": "ens33", "mode": "vepa"})
    assert r["failed"] and "already carries the passthrough link 'macvtap0'" in r["msg"]
    assert snapshot(lab) == before
    # back to private on ens32: a new address (the parent's cannot be kept)
    r = run(lab, METHOD2)
    k = kernel(lab)
    assert (k["parent"], k["mode"]) == ("ens32", "private")
    assert k["mac"] not in (links(lab)["ens33"]["address"], links(lab)["ens32"]["address"])

def test_persistent_takes_over_the_runtime_link_without_a_spurious_change(lab):
    k = kernel(lab)
    args = {**METHOD2, "persistent": True}
    r = run(lab, args, diff=True)
    assert r["changed"] is True, r
    assert r["diff"]["before"]["persistent"] is False and r["diff"]["after"]["persistent"] is True
    assert kernel(lab) == k, "taken over: same link, same MAC"
    [(uuid, name, dev)] = profiles(lab)
    assert (name, dev) == ("macvlan-macvtap0", "macvtap0"), "active on the link"
    assert prop(lab, uuid, "macvlan.tap") == "yes"
    assert prop(lab, uuid, "ipv4.method") == "disabled" and prop(lab, uuid, "ipv6.method") == "disabled"
    assert r["link"]["conn_uuid"] == uuid and r["link"]["persistent"] is True
    again = run(lab, args, count=True)
    assert again["changed"] is False and again["commands"] == [], again
    # No-change run: the kernel in one ip call, the profile over D-Bus (no nmcli).
    assert again["_spawned"] == ["ip"], again["_spawned"]
    runtime = run(lab, METHOD2, count=True)
    assert runtime["changed"] is False and runtime["_spawned"] == ["ip"], runtime

def test_persistent_link_comes_back_after_deletion_and_nm_restart(lab):
    k = kernel(lab)
    lab.exec(["ip", "link", "del", "macvtap0"])
    # NM up to 1.42 leaves the link gone until it starts again; NM 1.52 re-activates the
    # profile (and makes the link again) as soon as the link goes. Either way it must be back
    # after a restart, with the same settings.
    gone_or_back = kernel(lab)
    assert gone_or_back is None or gone_or_back["mac"] == k["mac"], gone_or_back
    lab.restart("nm")
    deadline = time.time() + 15
    while kernel(lab) is None and time.time() < deadline:
        time.sleep(0.2)
    n = kernel(lab)
    assert n is not None, "NetworkManager did not bring macvtap0 back"
    assert (n["kind"], n["parent"], n["mode"], n["mac"], n["up"]) == \
        (k["kind"], k["parent"], k["mode"], k["mac"], True)
    r = run(lab, {**METHOD2, "persistent": True})
    assert r["changed"] is False, r

def test_persistent_mode_change_reaches_profile_and_kernel(lab):
    k = kernel(lab)
    args = {**METHOD2, "mode": "vepa", "persistent": True}
    r = run(lab, args)
    assert r["changed"] is True
    assert kernel(lab) == {**k, "mode": "vepa"}
    [(uuid, _, dev)] = profiles(lab)
    assert dev == "macvtap0" and prop(lab, uuid, "macvlan.mode") == "1"  # vepa
    assert run(lab, args)["changed"] is False

def test_persistent_false_removes_the_profile_and_keeps_the_link(lab):
    k = kernel(lab)
    args = {**METHOD2, "mode": "vepa", "persistent": False}
    r = run(lab, args)
    assert r["changed"] is True and not r["failed"], r
    assert profiles(lab) == []
    n = kernel(lab)
    assert (n["parent"], n["mode"], n["mac"], n["up"]) == (k["parent"], k["mode"], k["mac"], True)
    assert run(lab, args)["changed"] is False
    # a runtime link may be kept down
    r = run(lab, {**args, "up": False})
    assert r["commands"] == [["ip", "link", "set", "dev", "macvtap0", "down"]]
    assert kernel(lab)["up"] is False and r["link"]["up"] is False
    assert run(lab, {**args, "up": False})["changed"] is False

def test_persistent_from_nothing_then_absent(lab):
    assert run(lab, {"name": "macvtap0", "state": "absent"})["changed"] is True
    assert kernel(lab) is None
    args = {"name": "mvt2", "link": "ens33", "mode": "bridge", "mac": "52:54:00:AB:CD:02",
            "persistent": True, "conn_name": "tap-ens33"}
    r = run(lab, args)
    assert r["changed"] is True and not r["failed"], r
    k = kernel(lab, "mvt2")
    assert (k["parent"], k["mode"], k["mac"], k["up"]) == ("ens33", "bridge", "52:54:00:ab:cd:02", True)
    assert [(n, d) for _, n, d in profiles(lab)] == [("tap-ens33", "mvt2")]
    assert run(lab, args)["changed"] is False

    # absent: check mode first (nothing changes), then for real
    before = snapshot(lab)
    r = run(lab, {"name": "mvt2", "state": "absent"}, check=True, diff=True)
    assert r["changed"] is True and r["diff"]["after"] == {}
    assert r["diff"]["before"]["persistent"] is True
    assert [c[:3] for c in r["commands"]] == [["nmcli", "con", "delete"], ["ip", "link", "del"]]
    assert snapshot(lab) == before
    r = run(lab, {"name": "mvt2", "state": "absent"})
    assert r["changed"] is True and r["link"] is None
    assert kernel(lab, "mvt2") is None and profiles(lab) == []
    assert run(lab, {"name": "mvt2", "state": "absent"})["changed"] is False
    lab.restart("nm")
    time.sleep(1)
    assert kernel(lab, "mvt2") is None, "no profile left to bring it back"
