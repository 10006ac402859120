//! Unit tests on outputs captured from the lab (libvirt 9.0, virsh 9.0, iproute2 6.1):
//! `tests/data/*.out` are the stdout of the module's own read batch.

use super::DomainIface;
use kvmnet_protocol::testing::{check_diff as check, first_random_hex, run_module, FakeRunner};
use kvmnet_protocol::Output;
use serde_json::{json, Value};

const G1_RUNNING: &str = include_str!("../tests/data/g1-running.out");
const G2_STOPPED: &str = include_str!("../tests/data/g2-stopped.out");
const NOPE: &str = include_str!("../tests/data/nope.out");
const IP_ENS32: &str = include_str!("../tests/data/ip-ens32.json");
/// The section marker in the captured outputs (virsh 9.0 printed it as the module's
/// earlier fixed marker); the test double's first batch gets the marker made from its
/// first random bytes.
const CAPTURED_MARK: &str = "@@kvmnet-section@@";

fn mark() -> String {
    kvmnet_virtxml::virsh::marker(&first_random_hex(kvmnet_virtxml::virsh::MARKER_BYTES))
}

fn batch(dom: &str, net: Option<&str>) -> Vec<String> {
    let m = mark();
    let mut script = format!(
        "'dumpxml' '--inactive' '--domain' '{dom}' ; echo {m} ; 'dumpxml' '--domain' '{dom}' ; echo {m} ; 'net-list' '--all' '--name' ; echo {m} ; 'net-list' '--name'"
    );
    if let Some(n) = net {
        script.push_str(&format!(" ; echo {m} ; 'net-dumpxml' '--network' '{n}'"));
    }
    ["virsh", "-q", "-c", "qemu:///system", &script]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn expect_batch(r: FakeRunner, dom: &str, net: Option<&str>, out: &str) -> FakeRunner {
    let argv = batch(dom, net);
    let a: Vec<&str> = argv.iter().map(String::as_str).collect();
    r.expect(&a, Output::ok(&out.replace(CAPTURED_MARK, &mark())))
}

fn argv(a: &[&str]) -> Value {
    json!(a)
}

#[test]
fn unchanged_guest_reads_once_and_writes_nothing() {
    let r = run_module::<DomainIface>(
        json!({"domain": "g1", "mac": "52:54:00:AA:00:01", "type": "bridge", "source": "br7"}),
        expect_batch(FakeRunner::new(), "g1", None, G1_RUNNING),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(r.calls.len(), 1, "one virsh process for the whole read");
    // The model change made earlier (e1000) has not reached the running guest (virtio).
    assert_eq!(r.json["restart_required"], json!(true));
    assert_eq!(
        r.json["interface"],
        json!({"mac": "52:54:00:aa:00:01", "type": "bridge", "source": "br7", "mode": null,
               "model": "e1000", "target": "vnet1", "state": "present"})
    );
}

#[test]
fn bridge_to_network_on_running_guest_plans_config_then_live() {
    let r = run_module::<DomainIface>(
        check(
            json!({"domain": "g1", "mac": "52:54:00:aa:00:01", "type": "network", "source": "net2"}),
        ),
        expect_batch(FakeRunner::new(), "g1", Some("net2"), G1_RUNNING),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(true));
    assert_eq!(
        r.json["commands"],
        json!([
            [
                "virsh",
                "-c",
                "qemu:///system",
                "update-device",
                "--domain",
                "g1",
                "--file",
                "/dev/stdin",
                "--config"
            ],
            [
                "virsh",
                "-c",
                "qemu:///system",
                "update-device",
                "--domain",
                "g1",
                "--file",
                "/dev/stdin",
                "--live"
            ]
        ])
    );
    let d = &r.json["diff"];
    assert_eq!(
        d[0]["before_header"],
        "domain g1 interface 52:54:00:aa:00:01 (persistent)"
    );
    assert_eq!(
        d[0]["after"],
        "<interface type='network'>\n  <mac address='52:54:00:aa:00:01'/>\n  <source network='net2'/>\n  <model type='e1000'/>\n  <rom enabled='no'/>\n  <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>\n</interface>\n"
    );
    // Live: the source moves, target/alias stay, the pending model is not retried.
    let live_after = d[1]["after"].as_str().unwrap();
    assert!(
        live_after.contains("<source network='net2'/>"),
        "{live_after}"
    );
    assert!(live_after.contains("<target dev='vnet1'/>"), "{live_after}");
    assert!(
        live_after.contains("<model type='virtio'/>"),
        "{live_after}"
    );
    assert_eq!(
        r.json["restart_required"],
        json!(true),
        "model still pending"
    );
}

#[test]
fn live_true_fails_before_anything_when_libvirt_cannot() {
    let r = run_module::<DomainIface>(
        json!({"domain": "g1", "mac": "52:54:00:aa:00:01", "type": "direct", "source": "ens32",
               "mode": "passthru", "live": "yes"}),
        expect_batch(FakeRunner::new(), "g1", None, G1_RUNNING).expect(
            &["ip", "-j", "-d", "link", "show", "dev", "ens32"],
            Output::ok(IP_ENS32),
        ),
    );
    assert_eq!(r.rc, 1);
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(r.json["commands"], json!([]));
    let msg = r.json["msg"].as_str().unwrap();
    assert!(msg.starts_with("live is true but libvirt cannot move a running guest's interface from a bridge to a macvtap device"), "{msg}");
}

#[test]
fn live_auto_to_direct_changes_config_and_reports_restart() {
    let r = run_module::<DomainIface>(
        check(
            json!({"domain": "g1", "type": "direct", "source": "ens32", "mode": "bridge",
                     "mac": "52:54:00:aa:00:01"}),
        ),
        expect_batch(FakeRunner::new(), "g1", None, G1_RUNNING).expect(
            &["ip", "-j", "-d", "link", "show", "dev", "ens32"],
            Output::ok(IP_ENS32),
        ),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(
        r.json["commands"],
        json!([[
            "virsh",
            "-c",
            "qemu:///system",
            "update-device",
            "--domain",
            "g1",
            "--file",
            "/dev/stdin",
            "--config"
        ]])
    );
    assert_eq!(r.json["restart_required"], json!(true));
    assert_eq!(r.json["warnings"].as_array().unwrap().len(), 1);
    assert!(r.json["diff"]["after"]
        .as_str()
        .unwrap()
        .contains("<source dev='ens32' mode='bridge'/>"));
}

#[test]
fn several_interfaces_and_no_mac_lists_them() {
    let r = run_module::<DomainIface>(
        json!({"domain": "g2", "type": "network", "source": "net2"}),
        expect_batch(FakeRunner::new(), "g2", Some("net2"), G2_STOPPED),
    );
    assert_eq!(r.rc, 1);
    assert_eq!(
        r.json["msg"],
        "missing required option 'mac': domain 'g2' has 2 interfaces, say which one: 52:54:00:bb:00:01 (network default), 52:54:00:bb:00:02 (bridge br0)"
    );
}

#[test]
fn stopped_guest_gets_config_only_and_no_restart() {
    let r = run_module::<DomainIface>(
        check(
            json!({"domain": "g2", "mac": "52:54:00:bb:00:01", "type": "network", "source": "net2",
                     "model": "virtio"}),
        ),
        expect_batch(FakeRunner::new(), "g2", Some("net2"), G2_STOPPED),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(
        r.json["commands"],
        json!([[
            "virsh",
            "-c",
            "qemu:///system",
            "update-device",
            "--domain",
            "g2",
            "--file",
            "/dev/stdin",
            "--config"
        ]])
    );
    assert_eq!(r.json["restart_required"], json!(false));
    assert!(r.json["interface"].get("target").is_none());
}

#[test]
fn add_needs_type_and_source_and_remove_detaches_by_mac() {
    let r = run_module::<DomainIface>(
        json!({"domain": "g2", "mac": "52:54:00:bb:00:09"}),
        expect_batch(FakeRunner::new(), "g2", None, G2_STOPPED),
    );
    assert_eq!(r.rc, 1);
    assert!(r.json["msg"]
        .as_str()
        .unwrap()
        .starts_with("option 'mac': domain 'g2' has no interface with MAC 52:54:00:bb:00:09 (its interfaces: 52:54:00:bb:00:01 (network default)"));

    let r = run_module::<DomainIface>(
        check(
            json!({"domain": "g2", "mac": "52:54:00:bb:00:09", "type": "network", "source": "net2"}),
        ),
        expect_batch(FakeRunner::new(), "g2", Some("net2"), G2_STOPPED),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(
        r.json["commands"],
        json!([argv(&[
            "virsh",
            "-c",
            "qemu:///system",
            "attach-device",
            "--domain",
            "g2",
            "--file",
            "/dev/stdin",
            "--config"
        ])])
    );
    assert_eq!(r.json["diff"]["before"], "");
    assert_eq!(
        r.json["diff"]["after"],
        "<interface type='network'>\n  <mac address='52:54:00:bb:00:09'/>\n  <source network='net2'/>\n</interface>\n"
    );

    let r = run_module::<DomainIface>(
        check(json!({"domain": "g2", "mac": "52:54:00:bb:00:02", "state": "absent"})),
        expect_batch(FakeRunner::new(), "g2", None, G2_STOPPED),
    );
    assert_eq!(
        r.json["commands"],
        json!([[
            "virsh",
            "-c",
            "qemu:///system",
            "detach-interface",
            "--domain",
            "g2",
            "--type",
            "bridge",
            "--mac",
            "52:54:00:bb:00:02",
            "--config"
        ]])
    );
    assert_eq!(r.json["diff"]["after"], "");
}

#[test]
fn removal_still_pending_in_the_running_guest_is_not_a_change() {
    // 52:54:00:aa:00:02 was detached from the config; the diskless guest never released it.
    let r = run_module::<DomainIface>(
        json!({"domain": "g1", "mac": "52:54:00:aa:00:02", "state": "absent"}),
        expect_batch(FakeRunner::new(), "g1", None, G1_RUNNING),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(false));
    assert_eq!(r.json["restart_required"], json!(true));
}

#[test]
fn unknown_domain_lists_defined_ones() {
    let r = run_module::<DomainIface>(
        json!({"domain": "nope"}),
        expect_batch(FakeRunner::new(), "nope", None, NOPE).expect(
            &[
                "virsh",
                "-q",
                "-c",
                "qemu:///system",
                "'list' '--all' '--name'",
            ],
            Output::ok("g1\ng2\n\n"),
        ),
    );
    assert_eq!(r.rc, 1);
    assert_eq!(
        r.json["msg"],
        "option 'domain': no domain 'nope' is defined at qemu:///system (defined: g1, g2)"
    );
}

#[test]
fn undefined_network_fails_but_only_warns_in_check_mode() {
    let args =
        json!({"domain": "g2", "mac": "52:54:00:bb:00:01", "type": "network", "source": "lan"});
    let r = run_module::<DomainIface>(
        args.clone(),
        expect_batch(FakeRunner::new(), "g2", Some("lan"), G2_STOPPED),
    );
    assert_eq!(r.rc, 1);
    assert_eq!(
        r.json["msg"],
        "option 'source': network 'lan' is not defined at qemu:///system (defined: default, mvt, net2)"
    );
    let r = run_module::<DomainIface>(
        check(args),
        expect_batch(FakeRunner::new(), "g2", Some("lan"), G2_STOPPED),
    );
    assert_eq!(r.rc, 0, "{}", r.json);
    assert_eq!(r.json["changed"], json!(true));
    assert!(r.json["warnings"][0]
        .as_str()
        .unwrap()
        .contains("assuming an earlier task creates it"));
}

#[test]
fn bad_options_fail_before_reading_the_host() {
    for (args, want) in [
        (json!({"domain": "g1", "type": "direct", "source": "ens32"}),
         "missing required option 'mode': type 'direct' needs a macvtap mode: bridge, private, vepa or passthrough"),
        (json!({"domain": "g1", "type": "network", "source": "n", "mode": "vepa"}),
         "option 'mode' applies to type 'direct' only, not to type 'network'"),
        (json!({"domain": "g1", "mac": "52:54:00:zz:00:01"}),
         "option 'mac': '52:54:00:zz:00:01' is not a MAC address (six hex octets such as 52:54:00:6b:3c:58)"),
        (json!({"domain": "g1", "live": "sometimes"}),
         "option 'live': value \"sometimes\" is not one of: auto, true (yes), false (no)"),
        (json!({"domain": "g1", "state": "absent"}),
         "state is absent but the following option is missing: mac"),
        (json!({"domain": "g1", "type": "bridge", "source": "a-much-too-long-name"}),
         "option 'source'"),
    ] {
        let r = run_module::<DomainIface>(args, FakeRunner::new());
        assert_eq!(r.rc, 1);
        assert!(r.calls.is_empty());
        assert!(r.json["msg"].as_str().unwrap().starts_with(want), "{}", r.json["msg"]);
    }
}
