//! Unit tests on outputs captured in a lab (tests/data/, iproute2 6.1, NetworkManager
//! 1.42): exact planned commands, refusals, results.

use super::MacvtapLink;
use kvmnet_protocol::testing::{check_diff as check, commands, run_module, FakeRunner};
use kvmnet_protocol::Output;
use serde_json::{json, Value};

const NONE: &str = include_str!("../tests/data/links-none.json");
const PRIVATE: &str = include_str!("../tests/data/links-private.json");
const PRIVATE_NM: &str = include_str!("../tests/data/links-private-nm.json");
const BRIDGE_PORT: &str = include_str!("../tests/data/links-ens33-bridgeport.json");
const PASSTHRU: &str = include_str!("../tests/data/links-passthru-ens33.json");
const NAME_IS_BRIDGE: &str = include_str!("../tests/data/links-name-is-bridge.json");
const NM_LIST_NONE: &str = include_str!("../tests/data/nm-list-none.txt");
const NM_LIST_ACTIVE: &str = include_str!("../tests/data/nm-list-active.txt");
const NM_SHOW_ACTIVE: &str = include_str!("../tests/data/nm-show-active.txt");
const UUID: &str = "5b0c4f3e-7a51-4d2e-9a39-0c6f1a2b3c4d";

const IP_LINKS: &[&str] = &["ip", "-j", "-d", "link", "show"];
const NM_LIST: &[&str] = crate::model::LIST_ARGV;
const NM_SHOW: &[&str] = &[
    "nmcli",
    "-t",
    "-f",
    "connection,macvlan,802-3-ethernet,ipv4,ipv6",
    "con",
    "show",
    "uuid",
    UUID,
];

fn ip(out: &str) -> FakeRunner {
    FakeRunner::new().expect(IP_LINKS, Output::ok(out))
}

fn base() -> Value {
    json!({"name": "macvtap0", "link": "ens32", "mode": "private", "mac": "52:54:00:12:34:56"})
}

#[test]
fn creates_a_runtime_link_with_the_given_mac() {
    let r = run_module::<MacvtapLink>(check(base()), ip(NONE));
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(
        commands(&r.json),
        vec![
            "ip link add link ens32 name macvtap0 address 52:54:00:12:34:56 type macvtap mode private",
            "ip link set dev macvtap0 up",
        ]
    );
    assert_eq!(r.json["diff"]["before"], json!({}));
    assert_eq!(
        r.json["diff"]["after"],
        json!({"kind": "macvtap", "parent": "ens32", "mode": "private", "mac": "52:54:00:12:34:56", "up": true})
    );
    assert_eq!(r.json["link"]["ifindex"], Value::Null);
    assert_eq!(r.calls.len(), 1, "check mode only reads");
}

#[test]
fn without_mac_a_new_link_gets_a_random_local_address() {
    let mut a = base();
    a["mac"] = Value::Null;
    let r = run_module::<MacvtapLink>(check(a), ip(NONE));
    let cmd = &commands(&r.json)[0];
    let mac = r.json["link"]["mac"].as_str().unwrap();
    assert!(cmd.contains(&format!(" address {mac} ")), "{cmd}");
    assert_eq!(u8::from_str_radix(&mac[0..2], 16).unwrap() & 3, 2, "{mac}");
}

#[test]
fn an_equal_link_is_left_alone_with_mac_given_or_not() {
    for mac in [
        json!("52:54:00:12:34:56"),
        json!("52-54-00-12-34-56"),
        Value::Null,
    ] {
        let mut a = base();
        a["mac"] = mac;
        a["mode"] = json!("private");
        let r = run_module::<MacvtapLink>(a, ip(PRIVATE));
        assert_eq!(r.json["changed"], json!(false), "{}", r.json);
        assert_eq!(commands(&r.json), Vec::<String>::new());
        assert_eq!(
            r.json["link"],
            json!({"name": "macvtap0", "ifindex": 523, "mac": "52:54:00:12:34:56", "mode": "private",
                   "parent": "ens32", "up": true, "tap_device": "/dev/tap523"})
        );
        assert_eq!(r.calls.len(), 1, "one read for a no-change run");
    }
}

#[test]
fn mode_changes_in_place_parent_and_passthru_recreate_with_the_same_mac() {
    let mut a = base();
    a["mode"] = json!("bridge");
    a["mac"] = Value::Null;
    let r = run_module::<MacvtapLink>(check(a), ip(PRIVATE));
    assert_eq!(
        commands(&r.json),
        vec!["ip link set dev macvtap0 type macvtap mode bridge"]
    );
    assert_eq!(r.json["diff"]["before"]["mode"], json!("private"));
    assert_eq!(r.json["diff"]["after"]["mode"], json!("bridge"));

    let mut a = base();
    a["link"] = json!("ens33");
    a["mac"] = Value::Null;
    let r = run_module::<MacvtapLink>(check(a), ip(PRIVATE));
    assert_eq!(
        commands(&r.json),
        vec![
            "ip link del dev macvtap0",
            "ip link add link ens33 name macvtap0 address 52:54:00:12:34:56 type macvtap mode private",
            "ip link set dev macvtap0 up",
        ]
    );

    let mut a = base();
    a["mode"] = json!("passthru");
    a["mac"] = Value::Null;
    let r = run_module::<MacvtapLink>(check(a), ip(PRIVATE));
    assert_eq!(
        commands(&r.json),
        vec![
            "ip link del dev macvtap0",
            "ip link add link ens32 name macvtap0 type macvtap mode passthru",
            "ip link set dev macvtap0 up",
        ]
    );
    // passthrough takes the parent's address
    assert_eq!(r.json["link"]["mac"], json!("3a:1b:17:ed:2b:f6"));
    assert_eq!(r.json["link"]["mode"], json!("passthrough"));
}

#[test]
fn up_false_brings_it_down_and_a_new_mac_is_set_in_place() {
    let mut a = base();
    a["up"] = json!("no");
    a["mac"] = json!("52:54:00:AA:BB:CC");
    let r = run_module::<MacvtapLink>(check(a), ip(PRIVATE));
    assert_eq!(
        commands(&r.json),
        vec![
            "ip link set dev macvtap0 address 52:54:00:aa:bb:cc",
            "ip link set dev macvtap0 down",
        ]
    );
}

#[test]
fn refuses_bridge_port_parent_before_any_change() {
    let mut a = base();
    a["link"] = json!("ens33");
    let r = run_module::<MacvtapLink>(a, ip(BRIDGE_PORT));
    assert_eq!(r.rc, 1);
    let msg = r.json["msg"].as_str().unwrap();
    assert!(
        msg.contains("'ens33' is a port of bridge 'br9'") && msg.contains("EBUSY"),
        "{msg}"
    );
    assert_eq!(r.calls.len(), 1);
    assert_eq!(r.json["changed"], json!(false));
}

#[test]
fn passthru_rules() {
    // passthrough on a parent that carries another macvtap
    let r = run_module::<MacvtapLink>(
        json!({"name": "mvt8", "link": "ens32", "mode": "passthru"}),
        ip(PASSTHRU),
    );
    assert_eq!(r.rc, 1);
    assert!(
        r.json["msg"]
            .as_str()
            .unwrap()
            .contains("passthrough needs 'ens32' to itself, but it already carries macvlan/macvtap link(s) macvtap0"),
        "{}",
        r.json["msg"]
    );
    // another link on a parent held by a passthrough link
    let r = run_module::<MacvtapLink>(
        json!({"name": "mvt8", "link": "ens33", "mode": "bridge"}),
        ip(PASSTHRU),
    );
    assert_eq!(r.rc, 1);
    assert!(
        r.json["msg"]
            .as_str()
            .unwrap()
            .contains("already carries the passthrough link 'mvt9'"),
        "{}",
        r.json["msg"]
    );
    // the passthrough link itself is in its state
    let r = run_module::<MacvtapLink>(
        json!({"name": "mvt9", "link": "ens33", "mode": "passthrough", "up": false}),
        ip(PASSTHRU),
    );
    assert_eq!(r.json["changed"], json!(false), "{}", r.json);
    assert_eq!(r.json["link"]["mac"], json!("b6:0b:0d:43:4b:26"));
}

#[test]
fn never_touches_a_link_of_that_name_that_is_not_a_macvtap() {
    let r = run_module::<MacvtapLink>(base(), ip(NAME_IS_BRIDGE));
    assert_eq!(r.rc, 1);
    assert!(
        r.json["msg"]
            .as_str()
            .unwrap()
            .contains("'macvtap0' already exists and is a bridge, not a macvtap"),
        "{}",
        r.json["msg"]
    );
    let r = run_module::<MacvtapLink>(
        json!({"name": "ens32", "state": "absent"}),
        ip(NONE).expect(NM_LIST, Output::ok(NM_LIST_NONE)),
    );
    assert_eq!(r.rc, 1);
    assert!(
        r.json["msg"].as_str().unwrap().contains("is a veth"),
        "{}",
        r.json["msg"]
    );
}

#[test]
fn missing_parent_is_an_error_in_every_mode() {
    for check_mode in [true, false] {
        let mut a = base();
        a["link"] = json!("ens99");
        a["_ansible_check_mode"] = json!(check_mode);
        let r = run_module::<MacvtapLink>(a, ip(NONE));
        assert_eq!(r.rc, 1);
        assert_eq!(
            r.json["msg"],
            json!("option 'link': the parent interface 'ens99' does not exist on this host")
        );
    }
}

#[test]
fn bad_input_fails_before_reading_anything() {
    let cases = [
        (
            json!({"name": "a-name-that-is-too-long", "link": "ens32", "mode": "private"}),
            "option 'name'",
        ),
        (
            json!({"name": "mac/vtap", "link": "ens32", "mode": "private"}),
            "option 'name'",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "bogus"}),
            "option 'mode': value 'bogus' is not one of",
        ),
        (
            json!({"name": "macvtap0", "mode": "private"}),
            "missing: link",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32"}),
            "missing: mode",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "mac": "52:54:00:12:34"}),
            "option 'mac'",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "mac": "01:00:5e:00:00:01"}),
            "multicast",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "passthru", "mac": "52:54:00:12:34:56"}),
            "option 'mac' does not fit mode passthrough",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "persistent": true, "up": false}),
            "option 'up'",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "conn_name": "x"}),
            "option 'conn_name'",
        ),
        (
            json!({"name": "macvtap0", "link": "macvtap0", "mode": "private"}),
            "option 'link'",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "persistent": "maybe"}),
            "option 'persistent'",
        ),
        (
            json!({"name": "macvtap0", "link": "ens32", "mode": "private", "bogus": 1}),
            "bogus",
        ),
    ];
    for (args, want) in cases {
        let r = run_module::<MacvtapLink>(args.clone(), FakeRunner::new());
        assert_eq!(r.rc, 1, "{args}");
        assert_eq!(r.json["failed"], json!(true));
        let msg = r.json["msg"].as_str().unwrap();
        assert!(msg.contains(want), "{args}: {msg}");
        assert!(r.calls.is_empty(), "{args}: nothing is read or run");
    }
}

#[test]
fn aliases_parent_mac_address_and_absent_needs_only_the_name() {
    let r = run_module::<MacvtapLink>(
        json!({"name": "macvtap0", "parent": "ens32", "mode": "private", "mac_address": "52:54:00:12:34:56"}),
        ip(PRIVATE),
    );
    assert_eq!(r.json["changed"], json!(false), "{}", r.json);
    let r = run_module::<MacvtapLink>(
        check(json!({"name": "macvtap0", "state": "absent"})),
        ip(PRIVATE).expect(NM_LIST, Output::ok(NM_LIST_NONE)),
    );
    assert_eq!(commands(&r.json), vec!["ip link del dev macvtap0"]);
    assert_eq!(r.json["diff"]["after"], json!({}));
    assert_eq!(r.json["diff"]["before"]["persistent"], json!(false));
}

#[test]
fn absent_removes_profile_and_link_and_without_nm_the_link_only() {
    let r = run_module::<MacvtapLink>(
        check(json!({"name": "macvtap0", "state": "absent"})),
        ip(PRIVATE_NM)
            .expect(NM_LIST, Output::ok(NM_LIST_ACTIVE))
            .expect(NM_SHOW, Output::ok(NM_SHOW_ACTIVE)),
    );
    assert_eq!(
        commands(&r.json),
        vec![
            format!("nmcli con delete uuid {UUID}"),
            "ip link del dev macvtap0".to_string()
        ]
    );
    assert_eq!(r.json["link"], Value::Null);
    // NetworkManager not running: the link alone (persistent not given)
    let r = run_module::<MacvtapLink>(
        check(json!({"name": "macvtap0", "state": "absent"})),
        ip(PRIVATE).expect(
            NM_LIST,
            Output::fail(8, "Error: NetworkManager is not running.\n"),
        ),
    );
    assert_eq!(commands(&r.json), vec!["ip link del dev macvtap0"]);
    // but persistent: false needs it
    let r = run_module::<MacvtapLink>(
        check(json!({"name": "macvtap0", "state": "absent", "persistent": false})),
        ip(PRIVATE).expect(
            NM_LIST,
            Output::fail(8, "Error: NetworkManager is not running.\n"),
        ),
    );
    assert_eq!(r.rc, 1);
    assert!(r.json["msg"]
        .as_str()
        .unwrap()
        .contains("NetworkManager is not running"));
    // nothing there: unchanged
    let r = run_module::<MacvtapLink>(
        json!({"name": "macvtap0", "state": "absent"}),
        ip(NONE).expect(NM_LIST, Output::ok(NM_LIST_NONE)),
    );
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(r.json["msg"], json!("macvtap macvtap0 is already absent"));
}

#[test]
fn persistent_takes_over_the_runtime_link_pinning_its_mac() {
    let mut a = base();
    a["mac"] = Value::Null;
    a["persistent"] = json!(true);
    let r = run_module::<MacvtapLink>(
        check(a),
        ip(PRIVATE).expect(NM_LIST, Output::ok(NM_LIST_NONE)),
    );
    let cmds = commands(&r.json);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    let uuid = r.json["link"]["conn_uuid"].as_str().unwrap();
    assert_eq!(
        cmds[0],
        format!(
            "nmcli con add type macvlan con-name macvlan-macvtap0 ifname macvtap0 connection.uuid {uuid} \
             connection.autoconnect yes macvlan.parent ens32 macvlan.mode private macvlan.tap yes \
             ipv4.method disabled ipv6.method disabled 802-3-ethernet.cloned-mac-address 52:54:00:12:34:56"
        )
    );
    assert_eq!(cmds[1], format!("nmcli con up uuid {uuid}"));
    assert_eq!(
        r.json["link"]["ifindex"],
        json!(523),
        "taken over, not recreated"
    );
    assert_eq!(r.json["diff"]["before"]["persistent"], json!(false));
    assert_eq!(r.json["diff"]["after"]["persistent"], json!(true));
    assert_eq!(
        r.json["diff"]["after"]["conn_name"],
        json!("macvlan-macvtap0")
    );
}

#[test]
fn persistent_rerun_is_unchanged_and_reads_three_times() {
    let mut a = base();
    a["persistent"] = json!(true);
    let r = run_module::<MacvtapLink>(
        a,
        ip(PRIVATE_NM)
            .expect(NM_LIST, Output::ok(NM_LIST_ACTIVE))
            .expect(NM_SHOW, Output::ok(NM_SHOW_ACTIVE)),
    );
    assert_eq!(r.json["changed"], json!(false), "{}", r.json);
    assert_eq!(r.json["link"]["conn_uuid"], json!(UUID));
    assert_eq!(r.json["link"]["persistent"], json!(true));
    assert_eq!(r.calls.len(), 3);
}

#[test]
fn persistent_mode_change_updates_profile_and_kernel_and_conn_name_renames() {
    let mut a = base();
    a["persistent"] = json!(true);
    a["mode"] = json!("vepa");
    a["conn_name"] = json!("tap-uplink");
    let r = run_module::<MacvtapLink>(
        check(a),
        ip(PRIVATE_NM)
            .expect(NM_LIST, Output::ok(NM_LIST_ACTIVE))
            .expect(NM_SHOW, Output::ok(NM_SHOW_ACTIVE)),
    );
    assert_eq!(
        commands(&r.json),
        vec![
            format!("nmcli con mod uuid {UUID} connection.id tap-uplink macvlan.mode vepa"),
            "ip link set dev macvtap0 type macvtap mode vepa".to_string(),
        ]
    );
    // parent change: the profile changes, the link goes, activation makes it again
    let mut a = base();
    a["persistent"] = json!(true);
    a["link"] = json!("ens33");
    let r = run_module::<MacvtapLink>(
        check(a),
        ip(PRIVATE_NM)
            .expect(NM_LIST, Output::ok(NM_LIST_ACTIVE))
            .expect(NM_SHOW, Output::ok(NM_SHOW_ACTIVE)),
    );
    assert_eq!(
        commands(&r.json),
        vec![
            format!("nmcli con mod uuid {UUID} macvlan.parent ens33"),
            "ip link del dev macvtap0".to_string(),
            format!("nmcli con up uuid {UUID}"),
        ]
    );
}

#[test]
fn persistent_false_removes_our_profile_and_keeps_the_link() {
    let mut a = base();
    a["persistent"] = json!(false);
    let r = run_module::<MacvtapLink>(
        check(a),
        ip(PRIVATE_NM)
            .expect(NM_LIST, Output::ok(NM_LIST_ACTIVE))
            .expect(NM_SHOW, Output::ok(NM_SHOW_ACTIVE)),
    );
    assert_eq!(
        commands(&r.json),
        vec![format!("nmcli con delete uuid {UUID}")]
    );
    assert_eq!(r.json["diff"]["after"]["persistent"], json!(false));
}

#[test]
fn a_real_run_applies_then_verifies_against_the_kernel() {
    let runner = ip(NONE)
        .expect(
            &[
                "ip",
                "link",
                "add",
                "link",
                "ens32",
                "name",
                "macvtap0",
                "address",
                "52:54:00:12:34:56",
                "type",
                "macvtap",
                "mode",
                "private",
            ],
            Output::ok(""),
        )
        .expect(
            &["ip", "link", "set", "dev", "macvtap0", "up"],
            Output::ok(""),
        )
        .expect(IP_LINKS, Output::ok(PRIVATE));
    let r = run_module::<MacvtapLink>(base(), runner);
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["link"]["ifindex"], json!(523));
    assert_eq!(r.json["link"]["tap_device"], json!("/dev/tap523"));
    assert_eq!(
        r.json["msg"],
        json!("Create macvtap macvtap0 on ens32 (mode private); bring macvtap0 up")
    );

    // the kernel does not show what was asked: a verification failure, not success
    let runner = ip(PRIVATE).expect(
        &[
            "ip", "link", "set", "dev", "macvtap0", "type", "macvtap", "mode", "bridge",
        ],
        Output::ok(""),
    );
    let mut runner = runner;
    for _ in 0..20 {
        runner = runner.expect(IP_LINKS, Output::ok(PRIVATE));
    }
    let mut a = base();
    a["mode"] = json!("bridge");
    let r = run_module::<MacvtapLink>(a, runner);
    assert_eq!(r.rc, 1);
    assert_eq!(r.json["error_kind"], json!("verification_failed"));
    assert!(
        r.json["msg"]
            .as_str()
            .unwrap()
            .contains("mode is Some(\"private\")"),
        "{}",
        r.json["msg"]
    );
    assert_eq!(r.json["changed"], json!(true));
}

/// The keyfile NetworkManager 1.42 keeps for the profile of nm-show-active.txt.
const KEYFILE: &str = "/etc/NetworkManager/system-connections/macvlan-macvtap0.nmconnection";
const KEYFILE_ACTIVE: &str = "[connection]\nid=macvlan-macvtap0\nuuid=5b0c4f3e-7a51-4d2e-9a39-0c6f1a2b3c4d\ntype=macvlan\ninterface-name=macvtap0\ntimestamp=1795831964\n\n[ethernet]\ncloned-mac-address=52:54:00:12:34:56\n\n[macvlan]\nmode=3\nparent=ens32\ntap=true\n\n[ipv4]\nmethod=disabled\n\n[ipv6]\naddr-gen-mode=default\nmethod=disabled\n\n[proxy]\n";

#[test]
fn persistent_rerun_reads_the_keyfile_instead_of_a_second_nmcli() {
    let mut a = base();
    a["persistent"] = json!(true);
    let list = NM_LIST_ACTIVE
        .lines()
        .map(|l| {
            if l.starts_with(UUID) {
                format!("{l}:{}", KEYFILE)
            } else {
                format!("{l}:/run/NetworkManager/system-connections/x.nmconnection")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let r = run_module::<MacvtapLink>(
        a.clone(),
        ip(PRIVATE_NM)
            .expect(NM_LIST, Output::ok(&list))
            .file(KEYFILE, KEYFILE_ACTIVE),
    );
    assert_eq!(r.json["changed"], json!(false), "{}", r.json);
    assert_eq!(r.json["link"]["conn_uuid"], json!(UUID));
    assert_eq!(r.calls.len(), 2, "one ip and one nmcli call: {:?}", r.calls);
    // The same keyfile with another mode is a change of the profile.
    let r = run_module::<MacvtapLink>(
        check(a),
        ip(PRIVATE_NM)
            .expect(NM_LIST, Output::ok(&list))
            .file(KEYFILE, &KEYFILE_ACTIVE.replace("mode=3", "mode=2")),
    );
    assert_eq!(r.json["changed"], json!(true), "{}", r.json);
    assert!(
        commands(&r.json).iter().any(|c| c.contains("macvlan.mode")),
        "{}",
        r.json
    );
}
