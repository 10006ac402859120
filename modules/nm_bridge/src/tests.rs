//! Unit tests on outputs captured in a lab (NetworkManager 1.42.4, iproute2 6.1), under
//! `tests/data/`: `fresh.*` (profile `uplink:1\x` with 192.0.2.5/24 active on ens32, no
//! bridge) and `adopted.*` (the tutorial's method 1 commands, then br0 set to stp off
//! and a static address).

use crate::plan::reset_uuids;
use crate::state::{props_argv, IP_ARGV, LIST_ARGV};
use crate::NmBridge;
use kvmnet_protocol::testing::{run_module, FakeRunner};
use kvmnet_protocol::Output;
use serde_json::{json, Value};

const FRESH_LIST: &str = include_str!("../tests/data/fresh.list");
const FRESH_PROPS: &str = include_str!("../tests/data/fresh.props");
const FRESH_ADDR: &str = include_str!("../tests/data/fresh.addr.json");
const FRESH_DEV: &str = include_str!("../tests/data/fresh.dev");
const ADOPTED_LIST: &str = include_str!("../tests/data/adopted.list");
const ADOPTED_PROPS: &str = include_str!("../tests/data/adopted.props");
const ADOPTED_ADDR: &str = include_str!("../tests/data/adopted.addr.json");

const LO: &str = "11b00b36-84d5-4fd0-87a6-f5d33efd1aac";
const UPLINK: &str = "18a5f3df-4183-49ae-8a60-58eb7e2462ee";
const VIRBR: &str = "64e78556-fd6c-4ecf-a58d-c3c955619d50";
const BR: &str = "0800e1b1-566e-45fb-abb4-68d1fa8c8912";
const PORT: &str = "f54dacb5-18b6-49c0-83a9-08ea275d3069";

fn props(uuids: &[&str]) -> Vec<String> {
    props_argv(uuids)
}

/// A runner that answers the three reads of the query.
fn reads(list: &str, uuids: &[&str], props_out: &str, addr: &str) -> FakeRunner {
    let pa = props(uuids);
    let pa: Vec<&str> = pa.iter().map(String::as_str).collect();
    FakeRunner::new()
        .expect(LIST_ARGV, Output::ok(list))
        .expect(&pa, Output::ok(props_out))
        .expect(IP_ARGV, Output::ok(addr))
}

fn fresh() -> FakeRunner {
    reads(FRESH_LIST, &[LO, UPLINK, VIRBR], FRESH_PROPS, FRESH_ADDR)
}

fn adopted() -> FakeRunner {
    reads(
        ADOPTED_LIST,
        &[LO, BR, VIRBR, PORT],
        ADOPTED_PROPS,
        ADOPTED_ADDR,
    )
}

fn cmds(v: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(v["commands"].clone()).unwrap()
}

fn argv(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

const U1: &str = "00000000-0000-4000-8000-000000000001";
const U2: &str = "00000000-0000-4000-8000-000000000002";
const U3: &str = "00000000-0000-4000-8000-000000000003";

fn static_opts(ports: Value) -> Value {
    json!({"name": "br0", "ports": ports, "stp": "no",
           "ipv4": {"method": "manual", "addresses": ["192.0.2.10/24"]},
           "ipv6": {"method": "disabled"}})
}

#[test]
fn check_mode_plans_the_tutorial_method_by_uuid_and_writes_nothing() {
    reset_uuids();
    let mut args = static_opts(json!(["ens32", "ens33"]));
    args["_ansible_check_mode"] = json!(true);
    args["_ansible_diff"] = json!(true);
    let r = run_module::<NmBridge>(
        args,
        fresh().expect(
            &["nmcli", "-t", "-f", "DEVICE,STATE", "device"],
            Output::ok(FRESH_DEV),
        ),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(true));
    let want = vec![
        argv(&format!("nmcli con add type bridge ifname br0 con-name bridge-br0 connection.uuid {U1} bridge.stp no ipv4.method manual ipv4.addresses 192.0.2.10/24 ipv6.method disabled")),
        argv(&format!("nmcli con mod uuid {UPLINK} connection.autoconnect no")),
        argv(&format!("nmcli con add type bridge-slave ifname ens32 master {U1} con-name bridge-slave-ens32 connection.uuid {U2}")),
        argv(&format!("nmcli con add type bridge-slave ifname ens33 master {U1} con-name bridge-slave-ens33 connection.uuid {U3}")),
        argv("mkdir -p -m 0700 /var/lib/kvmnet/nm_bridge"),
        argv("tee /var/lib/kvmnet/nm_bridge/br0.json"),
        argv(&format!("nmcli con up uuid {U1}")),
        argv(&format!("nmcli con up uuid {U2}")),
        argv(&format!("nmcli con up uuid {U3}")),
    ];
    assert_eq!(cmds(&r.json), want);
    // Only reads ran.
    assert!(r
        .calls
        .iter()
        .all(|c| c[0] == "ip" || c.contains(&"-t".to_string())));
    // Creation diffs have an empty before; the switched-off profile shows its change.
    let d = r.json["diff"].as_array().unwrap();
    assert_eq!(d[0]["before"], json!(""));
    assert_eq!(d[0]["after"]["bridge.stp"], json!("no"));
    assert_eq!(d[1]["before_header"], json!("nm profile uplink:1\\x"));
    assert_eq!(d[1]["before"]["connection.autoconnect"], json!("yes"));
    assert_eq!(d[1]["after"]["connection.autoconnect"], json!("no"));
    assert_eq!(d[1]["after"]["state"], json!("inactive"));
    // Not-yet-existing profiles have no UUID to report in check mode.
    assert_eq!(
        r.json["bridge"],
        json!({"name": "br0", "uuid": null, "conn_name": "bridge-br0"})
    );
    assert_eq!(r.json["ports"][1]["conn_name"], json!("bridge-slave-ens33"));
}

#[test]
fn refuses_to_take_a_port_that_carries_an_address() {
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "ports": "ens32", "stp": false}),
        fresh(),
    );
    assert_eq!(r.rc, 1);
    let msg = r.json["msg"].as_str().unwrap();
    assert!(msg.contains("ens32 carries 192.0.2.5/24"), "{msg}");
    assert!(msg.contains("ipv4"), "{msg}");
    assert_eq!(r.json["commands"], json!([]));
    // A port without addresses is fine.
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "ports": "ens33", "_ansible_check_mode": true}),
        fresh().expect(
            &["nmcli", "-t", "-f", "DEVICE,STATE", "device"],
            Output::ok(FRESH_DEV),
        ),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
}

#[test]
fn missing_port_lists_the_nics_that_exist() {
    let r = run_module::<NmBridge>(json!({"name": "br0", "ports": ["ens32", "eth9"]}), fresh());
    assert_eq!(r.rc, 1);
    assert_eq!(
        r.json["msg"],
        json!("option 'ports': eth9 does not exist on this host (NICs that do: ens32, ens33)")
    );
}

#[test]
fn adopted_tutorial_profiles_rerun_reads_only_twice_from_nmcli() {
    let r = run_module::<NmBridge>(static_opts(json!(["ens32"])), adopted());
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(false), "{}", r.json);
    assert_eq!(r.json["commands"], json!([]));
    assert_eq!(r.calls.iter().filter(|c| c[0] == "nmcli").count(), 2);
    assert_eq!(r.calls.len(), 3);
    assert_eq!(
        r.json["bridge"],
        json!({"name": "br0", "uuid": BR, "conn_name": "bridge-br0"})
    );
    assert_eq!(
        r.json["ports"],
        json!([{"name": "ens32", "uuid": PORT, "conn_name": "bridge-slave-ens32", "active": true}])
    );
}

#[test]
fn a_master_given_as_profile_name_is_repaired_to_the_uuid() {
    // What a peer module writes: connection.master holds the bridge's profile name.
    let broken = ADOPTED_PROPS.replace(
        &format!("connection.master:{BR}"),
        "connection.master:bridge-br0",
    );
    assert_ne!(broken, ADOPTED_PROPS);
    let mut args = static_opts(json!(["ens32"]));
    args["_ansible_check_mode"] = json!(true);
    let r = run_module::<NmBridge>(
        args,
        reads(ADOPTED_LIST, &[LO, BR, VIRBR, PORT], &broken, ADOPTED_ADDR),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(
        cmds(&r.json),
        vec![
            argv(&format!("nmcli con mod uuid {PORT} connection.master {BR}")),
            argv(&format!("nmcli con up uuid {PORT}")),
        ]
    );
    assert!(r.json["msg"]
        .as_str()
        .unwrap()
        .contains("repair port profile bridge-slave-ens32"));
}

#[test]
fn newer_nm_controller_spelling_is_read_and_written() {
    let newer = ADOPTED_PROPS
        .replace("connection.master:", "connection.controller:")
        .replace("connection.slave-type:", "connection.port-type:")
        .replace(
            &format!("connection.controller:{BR}"),
            "connection.controller:bridge-br0",
        );
    let mut args = static_opts(json!(["ens32"]));
    args["_ansible_check_mode"] = json!(true);
    let r = run_module::<NmBridge>(
        args,
        reads(ADOPTED_LIST, &[LO, BR, VIRBR, PORT], &newer, ADOPTED_ADDR),
    );
    assert_eq!(
        cmds(&r.json)[0],
        argv(&format!(
            "nmcli con mod uuid {PORT} connection.controller {BR}"
        ))
    );
    // The interface name is a valid master: left as it is.
    let by_ifname =
        ADOPTED_PROPS.replace(&format!("connection.master:{BR}"), "connection.master:br0");
    let r = run_module::<NmBridge>(
        static_opts(json!(["ens32"])),
        reads(
            ADOPTED_LIST,
            &[LO, BR, VIRBR, PORT],
            &by_ifname,
            ADOPTED_ADDR,
        ),
    );
    assert_eq!(r.json["changed"], json!(false), "{}", r.json);
}

#[test]
fn stp_change_on_the_active_bridge_is_reapplied() {
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "stp": true, "_ansible_check_mode": true, "_ansible_diff": true}),
        adopted(),
    );
    assert_eq!(
        cmds(&r.json),
        vec![
            argv(&format!("nmcli con mod uuid {BR} bridge.stp yes")),
            argv("nmcli dev reapply br0"),
        ]
    );
    assert_eq!(r.json["diff"]["before"]["bridge.stp"], json!("no"));
    assert_eq!(r.json["diff"]["after"]["bridge.stp"], json!("yes"));
    // A MAC cannot be reapplied: the bridge is re-activated, then its ports.
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "ports": ["ens32"], "mac": "52-54-00-AB-CD-01", "ipv4": {"method": "manual", "addresses": ["192.0.2.10/24"]}, "_ansible_check_mode": true}),
        adopted(),
    );
    assert_eq!(
        cmds(&r.json),
        vec![
            argv(&format!(
                "nmcli con mod uuid {BR} 802-3-ethernet.cloned-mac-address 52:54:00:ab:cd:01"
            )),
            argv(&format!("nmcli con up uuid {BR}")),
            argv(&format!("nmcli con up uuid {PORT}")),
        ]
    );
}

#[test]
fn removing_a_port_and_absent() {
    let mem = format!(
        r#"{{"disabled":[{{"uuid":"{UPLINK}","id":"uplink","port":"ens32","was_active":true,"had_autoconnect":true}}]}}"#
    );
    // ports: [] removes the port profile; the remembered profile is gone from the host,
    // so there is nothing to give back, and the memory is left as it is.
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "ports": [], "_ansible_check_mode": true}),
        adopted().file("/var/lib/kvmnet/nm_bridge/br0.json", &mem),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(
        cmds(&r.json)[0],
        argv(&format!("nmcli con delete uuid {PORT}"))
    );
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "state": "absent", "_ansible_check_mode": true, "_ansible_diff": true}),
        adopted(),
    );
    assert_eq!(
        cmds(&r.json),
        vec![argv(&format!("nmcli con delete uuid {BR} uuid {PORT}"))]
    );
    let d = r.json["diff"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0]["after"], json!(""));
    assert_eq!(d[0]["before"]["bridge.stp"], json!("no"));
    assert_eq!(r.json["bridge"]["uuid"], json!(null));
    // Nothing there: no change.
    let r = run_module::<NmBridge>(json!({"name": "br9", "state": "absent"}), adopted());
    assert_eq!(r.json["changed"], json!(false));
}

#[test]
fn networkmanager_not_running_is_a_clear_failure() {
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "ports": ["ens32"]}),
        FakeRunner::new().expect(
            LIST_ARGV,
            Output::fail(8, "Error: NetworkManager is not running.\n"),
        ),
    );
    assert_eq!(r.rc, 1);
    assert_eq!(r.json["error_kind"], json!("missing_dependency"));
    assert!(r.json["msg"]
        .as_str()
        .unwrap()
        .starts_with("NetworkManager is not running"));
}

#[test]
fn bad_input_fails_before_reading_the_host() {
    let cases = [
        (
            json!({"name": "br0-with-a-long-name"}),
            "option 'name': 'br0-with-a-long-name' is 20 bytes long",
        ),
        (
            json!({"name": "br:0"}),
            "option 'name': 'br:0' contains ':'",
        ),
        (
            json!({"name": "br0", "ports": ["ens 32"]}),
            "option 'ports': 'ens 32' contains ' '",
        ),
        (
            json!({"name": "br0", "ports": ["a/b"]}),
            "option 'ports': 'a/b' contains '/'",
        ),
        (
            json!({"name": "br0", "ports": ["br0"]}),
            "option 'ports': 'br0' is the bridge itself",
        ),
        (
            json!({"name": "br0", "ipv4": {"addresses": ["192.0.2.10"]}}),
            "option 'ipv4.addresses[0]': '192.0.2.10' is not an IPv4 address with a prefix length",
        ),
        (
            json!({"name": "br0", "ipv4": {"addresses": ["2001:db8::1/64"]}}),
            "option 'ipv4.addresses[0]'",
        ),
        (
            json!({"name": "br0", "ipv4": {"gateway": "192.0.2.1"}}),
            "option 'ipv4.gateway' requires: ipv4.addresses",
        ),
        (
            json!({"name": "br0", "ipv4": {"gateway": "192.0.2.1", "addresses": []}}),
            "option 'ipv4.gateway': a gateway needs ipv4.addresses",
        ),
        (
            json!({"name": "br0", "ipv4": {"method": "dhcp"}}),
            "option 'ipv4.method': value 'dhcp' is not one of",
        ),
        (
            json!({"name": "br0", "ipv4": {"method": "manual"}}),
            "option 'ipv4.method': method manual needs at least one address",
        ),
        (
            json!({"name": "br0", "ipv6": {"method": "disabled", "dns": ["2001:db8::53"]}}),
            "option 'ipv6.method': method disabled takes no",
        ),
        (
            json!({"name": "br0", "mac": "52:54:00:zz:00:01"}),
            "option 'mac': '52:54:00:zz:00:01' is not a MAC address",
        ),
        (
            json!({"name": "br0", "forward_delay": 1}),
            "option 'forward_delay': 1 is out of range",
        ),
        (
            json!({"name": "br0", "port_profiles": "steal"}),
            "option 'port_profiles': value 'steal' is not one of: disable, delete, keep",
        ),
        (
            json!({"name": "br0", "conn_name": " "}),
            "option 'conn_name': must not be empty",
        ),
    ];
    for (args, want) in cases {
        let r = run_module::<NmBridge>(args.clone(), FakeRunner::new());
        assert_eq!(r.rc, 1, "{args}");
        let msg = r.json["msg"].as_str().unwrap();
        assert!(msg.starts_with(want) || msg.contains(want), "{args}: {msg}");
        assert!(r.calls.is_empty(), "{args}");
    }
}

#[test]
fn aliases_and_coercions() {
    // mac_address is mac; "ens32" as a string is a one-element list; "no" is false.
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "ports": "ens32", "mac_address": "52:54:00:AB:CD:01", "stp": "no",
               "ipv4": {"method": "manual", "addresses": "192.0.2.10/24"}, "ipv6": {"method": "disabled"},
               "_ansible_check_mode": true}),
        adopted(),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(
        cmds(&r.json)[0],
        argv(&format!(
            "nmcli con mod uuid {BR} 802-3-ethernet.cloned-mac-address 52:54:00:ab:cd:01"
        ))
    );
}

#[test]
fn absent_ignores_options_that_describe_the_bridge() {
    use kvmnet_protocol::Module;
    let raw = json!({"name": "br0", "state": "absent", "stp": true, "ports": ["ens32"]});
    let v = NmBridge::spec()
        .validate(raw.as_object().unwrap(), "nm_bridge")
        .unwrap();
    let p: crate::params::Params =
        serde_json::from_value(serde_json::Value::Object(v.params)).unwrap();
    assert!(crate::params::validate(&p).is_ok());
    // A bad name is still refused with absent.
    let raw = json!({"name": "br/0", "state": "absent"});
    let v = NmBridge::spec()
        .validate(raw.as_object().unwrap(), "nm_bridge")
        .unwrap();
    let p: crate::params::Params =
        serde_json::from_value(serde_json::Value::Object(v.params)).unwrap();
    assert!(crate::params::validate(&p)
        .unwrap_err()
        .msg
        .contains("br/0"));
}

/// A running guest's tap on br0: NetworkManager 1.42 generates a volatile `tun` profile
/// for it whose master is the bridge (captured in a lab with a guest started on br0).
const VNET: &str = "8b494791-3e67-4a50-b4a3-4e650e9e30f8";
const VNET_FILE: &str = "/run/NetworkManager/system-connections/vnet0.nmconnection";
const VNET_KEYFILE: &str = "[connection]\nid=vnet0\nuuid=8b494791-3e67-4a50-b4a3-4e650e9e30f8\ntype=tun\nautoconnect=false\ninterface-name=vnet0\nmaster=0800e1b1-566e-45fb-abb4-68d1fa8c8912\nslave-type=bridge\ntimestamp=1795834292\n\n[tun]\nmode=2\nvnet-hdr=true\n\n[bridge-port]\npath-cost=2\n\n[.nmmeta]\nnm-generated=true\nvolatile=true\nexternal=true\n";

#[test]
fn a_guest_tap_on_the_bridge_is_never_taken_for_a_port_to_remove() {
    let list = format!("{ADOPTED_LIST}{VNET}:tun:vnet0:activated:{VNET_FILE}\n");
    let props_out = format!(
        "{ADOPTED_PROPS}\nconnection.id:vnet0\nconnection.uuid:{VNET}\nconnection.type:tun\nconnection.interface-name:vnet0\nconnection.autoconnect:no\nconnection.master:{BR}\nconnection.slave-type:bridge\n"
    );
    let runner = || {
        reads(
            &list,
            &[LO, BR, VIRBR, PORT, VNET],
            &props_out,
            ADOPTED_ADDR,
        )
        .file(VNET_FILE, VNET_KEYFILE)
    };
    let r = run_module::<NmBridge>(static_opts(json!(["ens32"])), runner());
    assert_eq!(r.json["changed"], json!(false), "{}", r.json);
    assert_eq!(
        r.calls.len(),
        3,
        "the keyfile is read, not another nmcli call"
    );
    assert_eq!(
        r.json["ports"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.json
    );
    // absent removes the bridge and its port profile, not the guest's generated profile.
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "state": "absent", "_ansible_check_mode": true}),
        runner(),
    );
    let deletes: Vec<String> = cmds(&r.json)
        .iter()
        .filter(|c| c.get(2).map(String::as_str) == Some("delete"))
        .map(|c| c.join(" "))
        .collect();
    assert!(!deletes.iter().any(|c| c.contains(VNET)), "{deletes:?}");
    assert!(deletes.iter().any(|c| c.contains(PORT)), "{deletes:?}");
}

#[test]
fn a_profile_vanishing_between_the_two_reads_makes_the_read_start_again() {
    // NetworkManager dropped a generated profile after the list call: nmcli answers rc 10
    // for it (and prints nothing after it); the read starts over from a new list.
    let pa = props(&[LO, BR, VIRBR, PORT]);
    let pa: Vec<&str> = pa.iter().map(String::as_str).collect();
    let vanished = Output::fail(
        10,
        &format!("Error: {VIRBR} - no such connection profile.\n"),
    );
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "state": "absent", "_ansible_check_mode": true}),
        FakeRunner::new()
            .expect(LIST_ARGV, Output::ok(ADOPTED_LIST))
            .expect(&pa, vanished)
            .expect(LIST_ARGV, Output::ok(ADOPTED_LIST))
            .expect(&pa, Output::ok(ADOPTED_PROPS))
            .expect(IP_ARGV, Output::ok(ADOPTED_ADDR)),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(
        cmds(&r.json),
        vec![argv(&format!("nmcli con delete uuid {BR} uuid {PORT}"))]
    );
}

#[test]
fn absent_takes_profiles_already_gone_as_deleted() {
    // Another actor deleted the port profile between our read and our delete: nmcli
    // deletes the rest and answers rc 10; the run succeeds and reports the change.
    let del = format!("nmcli con delete uuid {BR} uuid {PORT}");
    let del: Vec<&str> = del.split(' ').collect();
    let lo_props = format!("connection.id:lo\nconnection.uuid:{LO}\nconnection.type:loopback\n");
    let r = run_module::<NmBridge>(
        json!({"name": "br0", "state": "absent"}),
        adopted()
            .expect(
                &del,
                Output {
                    rc: 10,
                    stdout: format!("Connection 'br0' ({BR}) successfully deleted.\n"),
                    stderr: format!("Error: unknown connection '{PORT}'.\nError: cannot delete unknown connection(s): uuid '{PORT}'.\n"),
                },
            )
            .expect(LIST_ARGV, Output::ok(&format!("{LO}:loopback:lo:activated:\n")))
            .expect(
                &props(&[LO]).iter().map(String::as_str).collect::<Vec<_>>(),
                Output::ok(&lo_props),
            )
            .expect(IP_ARGV, Output::ok("[]")),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(r.json["commands"], json!([del]));
}
