//! Unit tests on outputs captured from the lab (libvirt 9.0, virsh -q batches, `ip -j -d
//! link show`): exact planned argv, results, diffs and failures.

use super::LibvirtNet;
use kvmnet_protocol::testing::{
    check_diff as check, commands, first_random_hex, run_module, FakeRunner,
};
use kvmnet_protocol::Output;
use serde_json::{json, Value};

const LINKS: &str = include_str!("../tests/data/links.json");
const NOT_FOUND: &str = "error: failed to get network 'NAME'\nerror: Network not found: no network with matching name 'NAME'\n";

fn data(name: &str) -> &'static str {
    match name {
        "host-bridge" => include_str!("../tests/data/host-bridge.out"),
        "pending" => include_str!("../tests/data/pending.out"),
        "vtap" => include_str!("../tests/data/vtap.out"),
        "nat1" => include_str!("../tests/data/nat1.out"),
        "route1" => include_str!("../tests/data/route1.out"),
        "open1" => include_str!("../tests/data/open1.out"),
        "iso1" => include_str!("../tests/data/iso1.out"),
        "vepa1" => include_str!("../tests/data/vepa1.out"),
        "pt1" => include_str!("../tests/data/pt1.out"),
        "brvt" => include_str!("../tests/data/brvt.out"),
        "hd1" => include_str!("../tests/data/hd1.out"),
        "ptpf" => include_str!("../tests/data/ptpf.out"),
        "transient" => include_str!("../tests/data/transient.out"),
        "missing" => include_str!("../tests/data/missing.out"),
        // libvirt 9.0's own default network (from virtxml's captures, libvirt-9.0.0).
        "default" => include_str!("../tests/data/default.out"),
        other => panic!("no data {other}"),
    }
}

fn mark() -> String {
    kvmnet_virtxml::virsh::marker(&first_random_hex(kvmnet_virtxml::virsh::MARKER_BYTES))
}

fn query_argv(name: &str) -> Vec<String> {
    let m = mark();
    vec![
        "virsh".into(),
        "-q".into(),
        "-c".into(),
        "qemu:///system".into(),
        format!("'net-info' '--network' '{name}' ; echo {m} ; 'net-dumpxml' '--inactive' '--network' '{name}' ; echo {m} ; 'net-dumpxml' '--network' '{name}'"),
    ]
}

/// Expect the one-process query of `name`, answered with captured output `file`.
fn query(r: FakeRunner, name: &str, file: &str) -> FakeRunner {
    let argv = query_argv(name);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = if file == "missing" {
        Output {
            rc: 1,
            stdout: data("missing").to_string(),
            stderr: NOT_FOUND.replace("NAME", name).repeat(3),
        }
    } else {
        Output::ok(data(file))
    };
    r.expect(&argv, out)
}

/// The lab host's links (captured `ip -j -d link show`) as the sysfs files the module reads.
fn links(mut r: FakeRunner) -> FakeRunner {
    for l in kvmnet_iproute::parse_links(LINKS).unwrap() {
        let devtype = if l.kind() == Some("bridge") {
            "DEVTYPE=bridge\n"
        } else {
            ""
        };
        r = r.file(
            &format!("/sys/class/net/{}/uevent", l.ifname),
            &format!("{devtype}INTERFACE={}\nIFINDEX={}\n", l.ifname, l.ifindex),
        );
    }
    r
}

fn run(args: Value, r: FakeRunner) -> kvmnet_protocol::module::RunReport {
    run_module::<LibvirtNet>(args, r)
}

/// Every folder under tests/cases/ (see modules/README.md, "Golden cases").
#[test]
fn golden_cases() {
    kvmnet_protocol::testing::run_cases::<LibvirtNet>(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/cases"
    ));
}

#[test]
fn every_mode_as_libvirt_stores_it_compares_equal() {
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "vtap",
            json!({"forward": "private", "interfaces": ["macvtap0"]}),
            true,
        ),
        (
            "nat1",
            json!({"forward": "nat", "ip": {"address": "192.168.150.1", "prefix": 24,
            "dhcp": {"start": "192.168.150.10", "end": "192.168.150.99"}}}),
            false,
        ),
        (
            "route1",
            json!({"forward": "route", "ip": {"address": "192.168.151.1/24"}}),
            false,
        ),
        (
            "open1",
            json!({"forward": "open", "ip": {"address": "192.168.152.1", "prefix": "24"}}),
            false,
        ),
        (
            "iso1",
            json!({"forward": "isolated", "ip": {"address": "192.168.153.1", "prefix": 24}}),
            false,
        ),
        (
            "vepa1",
            json!({"forward": "vepa", "interfaces": "ens32,ens33"}),
            true,
        ),
        (
            "pt1",
            json!({"forward": "passthru", "interfaces": ["ens33"]}),
            true,
        ),
        (
            "brvt",
            json!({"forward": "bridge", "interfaces": ["ens32"]}),
            true,
        ),
        (
            "hd1",
            json!({"forward": "hostdev", "pf": "ens33", "state": "present"}),
            true,
        ),
        (
            "ptpf",
            json!({"forward": "passthrough", "pf": "ens33", "state": "inactive"}),
            true,
        ),
    ];
    for (name, mut args, devices) in cases {
        args["name"] = json!(name);
        let mut r = query(FakeRunner::new(), name, name);
        if devices {
            r = links(r);
        }
        let rep = run(check(args), r);
        let j = &rep.json;
        assert_eq!(j["changed"], json!(false), "{name}: {j}");
        assert_eq!(j["restart_required"], json!(false), "{name}");
        assert_eq!(
            rep.calls.len(),
            1,
            "{name}: one virsh process (devices: {devices})"
        );
    }
}

#[test]
fn changed_bridge_on_active_network_is_redefined_with_its_uuid() {
    let r = links(query(FakeRunner::new(), "host-bridge", "host-bridge"));
    let rep = run(
        check(json!({"name": "host-bridge", "forward": "bridge", "bridge": "br1"})),
        r,
    );
    let j = &rep.json;
    assert_eq!(j["changed"], json!(true), "{j}");
    assert_eq!(
        commands(j),
        vec!["virsh -c qemu:///system net-define --file /dev/stdin"]
    );
    assert_eq!(j["restart_required"], json!(true));
    assert!(j["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("previous definition")));
    assert_eq!(
        j["msg"],
        "would redefine network host-bridge (bridge.name changed); the running network keeps its previous definition until restarted"
    );
    let d = &j["diff"][0];
    assert_eq!(
        d["before_header"],
        "libvirt network host-bridge (inactive XML)"
    );
    assert!(d["before"]
        .as_str()
        .unwrap()
        .contains("<bridge name='br0'/>"));
    let after = d["after"].as_str().unwrap();
    assert!(after.contains("<bridge name='br1'/>"), "{after}");
    assert!(after.contains("<uuid>c1da1a30-d80d-48e6-b500-e203490470a7</uuid>"));
    assert_eq!(j["diff"][1]["before"], j["diff"][1]["after"]);
    assert_eq!(j["network"]["bridge"], "br1");
    assert!(j["xml"].as_str().unwrap().contains("br1"));
}

#[test]
fn something_only_the_current_definition_has_is_removed() {
    // nat1 has a DHCP range; the task no longer asks for one.
    let r = query(FakeRunner::new(), "nat1", "nat1");
    let rep = run(
        check(
            json!({"name": "nat1", "forward": "nat", "ip": {"address": "192.168.150.1", "prefix": 24}}),
        ),
        r,
    );
    let j = &rep.json;
    assert_eq!(j["changed"], json!(true), "{j}");
    let after = j["diff"][0]["after"].as_str().unwrap();
    assert!(!after.contains("dhcp"), "{after}");
    // libvirt's choices are kept: the same bridge, MAC and uuid.
    assert!(
        after.contains("<bridge name='virbr2' stp='on' delay='0'/>"),
        "{after}"
    );
    assert!(
        after.contains("<mac address='52:54:00:6a:74:1f'/>"),
        "{after}"
    );
    assert!(after.contains("<uuid>ff44181e-dd8d-497a-8dc7-7418b1e57115</uuid>"));
    assert_eq!(j["restart_required"], json!(true));
}

#[test]
fn state_changes_and_autostart_in_one_run() {
    // Active network → inactive, autostart on.
    let r = links(query(FakeRunner::new(), "vtap", "vtap"));
    let rep = run(
        check(json!({"name": "vtap", "state": "inactive", "autostart": true})),
        r,
    );
    assert_eq!(
        commands(&rep.json),
        vec![
            "virsh -c qemu:///system net-destroy --network vtap",
            "virsh -c qemu:///system net-autostart --network vtap",
        ]
    );
    // present leaves the running state alone; autostart off is already so.
    let r = links(query(FakeRunner::new(), "vtap", "vtap"));
    let rep = run(
        check(json!({"name": "vtap", "state": "present", "autostart": false})),
        r,
    );
    assert_eq!(rep.json["changed"], json!(false), "{}", rep.json);
    // A stopped network is started with its (already new) definition.
    let r = links(query(FakeRunner::new(), "hd1", "hd1"));
    let rep = run(check(json!({"name": "hd1"})), r);
    assert_eq!(
        commands(&rep.json),
        vec!["virsh -c qemu:///system net-start --network hd1"]
    );
}

#[test]
fn a_transient_network_becomes_persistent() {
    let r = links(query(FakeRunner::new(), "tr1", "transient"));
    let rep = run(check(json!({"name": "tr1", "state": "present"})), r);
    let j = &rep.json;
    assert_eq!(
        commands(j),
        vec!["virsh -c qemu:///system net-define --file /dev/stdin"]
    );
    assert!(j["xml"].as_str().unwrap().contains("<uuid>a59cbe55"));
    assert_eq!(j["restart_required"], json!(false));
    // inactive: define first (a transient network vanishes when stopped), then stop.
    let r = links(query(FakeRunner::new(), "tr1", "transient"));
    let rep = run(check(json!({"name": "tr1", "state": "inactive"})), r);
    assert_eq!(
        commands(&rep.json),
        vec![
            "virsh -c qemu:///system net-define --file /dev/stdin",
            "virsh -c qemu:///system net-destroy --network tr1"
        ]
    );
}

#[test]
fn xml_option_is_compared_like_the_structured_ones() {
    let xml = "<network><name>vtap</name><forward mode=\"private\"><interface dev=\"macvtap0\"/></forward></network>";
    let r = links(query(FakeRunner::new(), "vtap", "vtap"));
    let rep = run(check(json!({"name": "vtap", "xml": xml})), r);
    assert_eq!(rep.json["changed"], json!(false), "{}", rep.json);
    let r = links(query(FakeRunner::new(), "vtap", "vtap"));
    let other = xml.replace(
        "<name>vtap</name>",
        "<name>vtap</name><uuid>0000aaaa-1ad4-47e0-b411-d85b7d303921</uuid>",
    );
    let rep = run(check(json!({"name": "vtap", "xml": other})), r);
    assert_eq!(rep.json["failed"], json!(true));
    assert!(rep.json["msg"]
        .as_str()
        .unwrap()
        .contains("cannot change a network's uuid"));
}

fn fails_before_reading(args: Value, want: &str) {
    let rep = run(check(args.clone()), FakeRunner::new());
    let j = &rep.json;
    assert_eq!(j["failed"], json!(true), "{args}: {j}");
    assert_eq!(rep.rc, 1);
    let msg = j["msg"].as_str().unwrap();
    assert!(msg.contains(want), "{args}: {msg}");
    assert!(rep.calls.is_empty(), "{args}: nothing is read or run");
}

#[test]
fn options_that_do_not_fit_the_forward_mode_fail_before_anything_runs() {
    fails_before_reading(
        json!({"name": "n", "forward": "nat", "interfaces": ["ens32"], "ip": {"address": "10.0.0.1/24"}}),
        "option 'interfaces' does not fit forward nat",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "bridge"}),
        "missing required option 'bridge': forward bridge needs the host bridge",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "route"}),
        "missing required option 'ip': libvirt refuses forward route without",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "bridge", "bridge": "br0", "interfaces": ["ens32"]}),
        "'bridge' and 'interfaces' are mutually exclusive",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "bridge", "bridge": "br0", "ip": {"address": "10.0.0.1/24"}}),
        "option 'ip' does not fit forward bridge",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "private", "interfaces": []}),
        "option 'interfaces' is empty",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "vepa"}),
        "missing required option 'interfaces'",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "hostdev"}),
        "missing required option 'pf'",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "private", "pf": "ens33", "interfaces": ["ens32"]}),
        "option 'pf' does not fit forward private",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "vepa", "interfaces": ["ens32", "ens32"]}),
        "lists 'ens32' twice",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "isolated", "bridge": "a-much-too-long-bridge-name"}),
        "bridge",
    );
}

#[test]
fn a_bad_xml_option_fails_before_anything_runs() {
    fails_before_reading(
        json!({"name": "n", "xml": "<network><name>n</name>", "forward": "nat"}),
        "options are mutually exclusive: xml, forward",
    );
    fails_before_reading(
        json!({"name": "n", "xml": "<network><name>n</name>"}),
        "option 'xml': malformed XML",
    );
    fails_before_reading(
        json!({"name": "n", "xml": "<network><name>other</name></network>"}),
        "its <name> is 'other' but option 'name' is 'n'",
    );
    fails_before_reading(
        json!({"name": "n", "xml": "<domain><name>n</name></domain>"}),
        "root element is <domain>",
    );
    fails_before_reading(
        json!({"name": "n", "bridge": "br0"}),
        "option 'bridge' requires: forward",
    );
}

#[test]
fn bad_ip_and_state_options_fail_before_anything_runs() {
    fails_before_reading(
        json!({"name": "n", "forward": "nat", "ip": {"address": "192.168.1.1"}}),
        "missing required option 'ip.prefix'",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "nat", "ip": {"address": "192.168.1.300", "prefix": 24}}),
        "option 'ip.address': '192.168.1.300' is not an IP address",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "nat", "ip": {"address": "192.168.1.1", "prefix": 33}}),
        "option 'ip.prefix': 33",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "nat", "ip": {"address": "192.168.1.1", "prefix": 24,
               "dhcp": {"start": "192.168.2.10", "end": "192.168.1.99"}}}),
        "option 'ip.dhcp.start': 192.168.2.10 is outside the network 192.168.1.1/24",
    );
    fails_before_reading(
        json!({"name": "n", "state": "absent", "autostart": true}),
        "option 'autostart': true does not fit state absent",
    );
    fails_before_reading(
        json!({"name": "n", "forward": "bogus"}),
        "option 'forward': value 'bogus' is not one of",
    );
    fails_before_reading(json!({"name": "a/b"}), "option 'name'");
}

/// The lines where two texts differ, as (before, after); both must have as many lines.
fn changed_lines<'a>(before: &'a str, after: &'a str) -> Vec<(&'a str, &'a str)> {
    assert_eq!(
        before.lines().count(),
        after.lines().count(),
        "{before}\n---\n{after}"
    );
    before
        .lines()
        .zip(after.lines())
        .filter(|(b, a)| b != a)
        .collect()
}

#[test]
fn options_give_a_minimal_diff_too() {
    // libvirt's default network, stored with a netmask, described by options (a prefix)
    // with another DHCP range end: the diff shows that line only, in libvirt's spelling.
    let r = query(FakeRunner::new(), "default", "default");
    let ip = json!({"address": "192.168.122.1/24",
                    "dhcp": {"start": "192.168.122.2", "end": "192.168.122.200"}});
    let rep = run(
        check(json!({"name": "default", "forward": "nat", "ip": ip})),
        r,
    );
    let d = &rep.json["diff"][0];
    assert_eq!(
        changed_lines(d["before"].as_str().unwrap(), d["after"].as_str().unwrap()),
        vec![(
            "      <range start='192.168.122.2' end='192.168.122.254'/>",
            "      <range start='192.168.122.2' end='192.168.122.200'/>"
        )],
        "{}",
        rep.json
    );
    // A host bridge network moved to another bridge: one line.
    let r = links(query(FakeRunner::new(), "host-bridge", "host-bridge"));
    let rep = run(
        check(json!({"name": "host-bridge", "forward": "bridge", "bridge": "br1"})),
        r,
    );
    let d = &rep.json["diff"][0];
    assert_eq!(
        changed_lines(d["before"].as_str().unwrap(), d["after"].as_str().unwrap()),
        vec![("  <bridge name='br0'/>", "  <bridge name='br1'/>")]
    );
}

#[test]
fn a_missing_network_without_definition_names_the_option() {
    let r = query(FakeRunner::new(), "lan", "missing");
    let rep = run(check(json!({"name": "lan"})), r);
    assert_eq!(rep.json["failed"], json!(true));
    assert_eq!(
        rep.json["msg"],
        "missing required option 'forward': libvirt network 'lan' does not exist; forward (or xml) describes the network to define"
    );
}

#[test]
fn libvirtd_not_reachable_is_a_clear_failure() {
    let argv = query_argv("lan");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let r = FakeRunner::new().expect(
        &argv,
        Output::fail(
            1,
            "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory\n",
        ),
    );
    let rep = run(check(json!({"name": "lan", "forward": "isolated"})), r);
    let j = &rep.json;
    assert_eq!(j["failed"], json!(true));
    assert_eq!(j["error_kind"], "missing_dependency");
    assert!(
        j["msg"]
            .as_str()
            .unwrap()
            .starts_with("libvirtd is not reachable at qemu:///system"),
        "{j}"
    );
}

/// Any args file, any shape: one well-formed result (kvmnet_protocol::testing::props).
mod props {
    use kvmnet_protocol::testing::props::{any_args, one_result, option_names};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_args_give_one_result(args in any_args(option_names::<crate::LibvirtNet>())) {
            one_result::<crate::LibvirtNet>(args)?;
        }
    }
}
