//! The readers on what virsh really printed, for every libvirt the lab's userlands hold:
//! tests/data/libvirt-7.0.0 (Debian 11), libvirt-9.0.0 (Debian 12), libvirt-11.3.0
//! (Debian 13), captured by tests/capture.py on 2026-12-04 (see its header for the lab
//! state: libvirt's default network, a bridge network on br0, a running guest g1 and a
//! shut-off guest g2 with one interface of each type). Every version must read the same.
//!
//! What differs between the versions, and does not matter to the readers: QEMU's machine
//! type, `<audio>` (11.3), `<resource>` in 9.0's live domain XML, `Messages:` (9.0, 11.3)
//! and `Autostart Once:` (11.3) in `dominfo`. What is the same: `virsh -q` glues the
//! `echo` marker to the next section on all three; "Network not found" and "failed to
//! get domain" are worded alike; libvirt adds `<model type='rtl8139'/>` to a direct
//! interface without a model on all three.

use kvmnet_protocol::testing::FakeRunner;
use kvmnet_protocol::{AnsibleFlags, Ctx, Output};
use kvmnet_virtxml::interface::{self, Facets};
use kvmnet_virtxml::{domain, inventory, netstate, network, Element};
use serde_json::Value;
use std::path::PathBuf;

const URI: &str = "qemu:///system";
const VERSIONS: &[&str] = &["7.0.0", "9.0.0", "11.3.0"];

fn dir(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("libvirt-{version}"))
}

/// The lab's answers to the captured calls `names`, in that order.
fn ctx(version: &str, names: &[&str]) -> Ctx {
    let d = dir(version);
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("calls.json")).unwrap()).unwrap();
    assert!(index["libvirt"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{version}-")));
    let calls = index["calls"].as_array().unwrap();
    let mut r = FakeRunner::new();
    for name in names {
        let c = calls
            .iter()
            .find(|c| c["name"] == *name)
            .unwrap_or_else(|| panic!("{version}: no capture {name}"));
        let argv: Vec<&str> = c["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let text = |key: &str| {
            c[key]
                .as_str()
                .map(|f| std::fs::read_to_string(d.join(f)).unwrap())
                .unwrap_or_default()
        };
        let out = Output {
            rc: c["rc"].as_i64().unwrap() as i32,
            stdout: text("stdout"),
            stderr: text("stderr"),
        };
        r = r.expect(&argv, out);
    }
    Ctx::new(AnsibleFlags::default(), Box::new(r))
}

fn p(xml: &str) -> Element {
    Element::parse(xml).unwrap()
}

#[test]
fn the_default_network_reads_alike_on_every_version() {
    // What libvirt_net's options for the default network describe.
    let want = p("<network><name>default</name><forward mode='nat'/><ip address='192.168.122.1' prefix='24'><dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>");
    for v in VERSIONS {
        let n = netstate::read(&mut ctx(v, &["netstate-default"]), URI, "default").unwrap();
        assert!(n.exists && n.active && n.persistent && n.autostart, "{v}");
        assert_eq!(n.bridge.as_deref(), Some("virbr0"), "{v}");
        let (inactive, live) = (n.inactive.as_ref().unwrap(), n.live.as_ref().unwrap());
        assert_eq!(n.uuid, network::uuid(inactive), "{v}");
        assert!(n
            .inactive_text
            .starts_with("<network>\n  <name>default</name>\n"));
        assert_eq!(network::forward_mode(inactive), "nat", "{v}");
        assert_eq!(network::bridge_name(inactive).as_deref(), Some("virbr0"));
        // The live XML adds connections and the NAT port range: still the same network.
        assert_eq!(live.attr("connections"), Some("1"), "{v}");
        assert!(live.path("forward/nat/port").is_some(), "{v}");
        assert!(network::live_matches(live, inactive), "{v}");
        assert!(network::same_definition(&want, inactive), "{v}");
        let other = p(&want.to_xml().replace("122.254", "122.253"));
        let (d, c) = network::comparable(&other, inactive);
        assert_eq!(network::differences(&c, &d), vec!["ip.dhcp.range.end"]);
    }
}

#[test]
fn a_bridge_network_and_a_missing_one_read_alike_on_every_version() {
    let want = p(
        "<network><name>host-bridge</name><forward mode='bridge'/><bridge name='br0'/></network>",
    );
    for v in VERSIONS {
        let n = netstate::read(&mut ctx(v, &["netstate-host-bridge"]), URI, "host-bridge").unwrap();
        assert!(n.exists && n.active && n.persistent && !n.autostart, "{v}");
        assert_eq!(n.bridge.as_deref(), Some("br0"), "{v}");
        let inactive = n.inactive.as_ref().unwrap();
        assert_eq!(
            network::referenced_devices(inactive),
            vec![("bridge", "br0".to_string())]
        );
        assert!(network::same_definition(&want, inactive), "{v}");
        assert!(
            network::live_matches(n.live.as_ref().unwrap(), inactive),
            "{v}"
        );
        // Three commands failed: rc 1, three "Network not found", empty sections.
        let m = netstate::read(&mut ctx(v, &["netstate-missing"]), URI, "missing").unwrap();
        assert!(!m.exists && m.inactive.is_none() && m.live.is_none(), "{v}");
    }
}

fn facets(mac: &str, kind: &str, source: &str, mode: Option<&str>, model: &str) -> Facets {
    Facets {
        mac: mac.into(),
        kind: kind.into(),
        source: Some(source.into()),
        mode: mode.map(str::to_string),
        model: Some(model.into()),
    }
}

/// g1's and g2's interfaces, as libvirt stored them (the direct one got a default model).
fn guest_facets(n: u8) -> Vec<Facets> {
    let mac = |i: u8| format!("52:54:00:c0:00:{n}{i}");
    vec![
        facets(&mac(1), "network", "default", None, "virtio"),
        facets(&mac(2), "bridge", "br0", None, "e1000"),
        facets(&mac(3), "direct", "ens32", Some("bridge"), "rtl8139"),
    ]
}

#[test]
fn a_running_guests_interfaces_read_alike_on_every_version() {
    for v in VERSIONS {
        let d = domain::read(&mut ctx(v, &["domain-g1"]), URI, "g1", Some("default")).unwrap();
        let got: Vec<Facets> = interface::interfaces(&d.persistent)
            .into_iter()
            .map(interface::facets)
            .collect();
        assert_eq!(got, guest_facets(1), "{v}");
        let live = d.live.as_ref().expect("g1 runs");
        assert!(interface::is_running(live), "{v}");
        // The live XML adds target, alias, portid and the network's bridge: same facets.
        let got: Vec<Facets> = interface::interfaces(live)
            .into_iter()
            .map(interface::facets)
            .collect();
        assert_eq!(got, guest_facets(1), "{v}");
        assert!(interface::find(live, "52:54:00:c0:00:13").is_some());
        assert_eq!(d.networks, vec!["default", "host-bridge"], "{v}");
        assert_eq!(d.active_networks, vec!["default", "host-bridge"], "{v}");
        let net = d.network.as_ref().unwrap();
        assert_eq!(network::name(net).as_deref(), Some("default"), "{v}");
    }
}

#[test]
fn a_shut_off_guest_and_a_missing_one_read_alike_on_every_version() {
    for v in VERSIONS {
        let d = domain::read(&mut ctx(v, &["domain-g2"]), URI, "g2", Some("host-bridge")).unwrap();
        assert!(
            d.live.is_none(),
            "{v}: a shut-off guest has no live definition"
        );
        let got: Vec<Facets> = interface::interfaces(&d.persistent)
            .into_iter()
            .map(interface::facets)
            .collect();
        assert_eq!(got, guest_facets(2), "{v}");
        assert_eq!(
            network::forward_mode(d.network.as_ref().unwrap()),
            "bridge",
            "{v}"
        );
        let e = domain::read(
            &mut ctx(v, &["domain-nope", "domain-nope-list"]),
            URI,
            "nope",
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.msg,
            "option 'domain': no domain 'nope' is defined at qemu:///system (defined: g1, g2)",
            "{v}"
        );
    }
}

#[test]
fn the_inventory_reads_alike_on_every_version() {
    for v in VERSIONS {
        let inv = inventory::read(
            &mut ctx(v, &["inventory-names", "inventory-detail"]),
            URI,
            true,
        )
        .unwrap();
        let nets: Vec<(&str, bool, bool)> = inv
            .networks
            .iter()
            .map(|n| (n.name.as_str(), n.state.active, n.state.autostart))
            .collect();
        assert_eq!(
            nets,
            vec![("default", true, true), ("host-bridge", true, false)],
            "{v}"
        );
        let doms: Vec<(&str, &str, bool, bool, bool)> = inv
            .domains
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    d.state.as_str(),
                    d.persistent,
                    d.autostart,
                    d.live.is_some(),
                )
            })
            .collect();
        assert_eq!(
            doms,
            vec![
                ("g1", "running", true, false, true),
                ("g2", "shut off", true, false, false)
            ],
            "{v}"
        );
        for d in &inv.domains {
            let uuid = d
                .definition
                .child("uuid")
                .map(|u| u.text.trim().to_string());
            assert_eq!(d.uuid, uuid, "{v} {}", d.name);
            let n: u8 = d.name[1..].parse().unwrap();
            let got: Vec<Facets> = interface::interfaces(&d.definition)
                .into_iter()
                .map(interface::facets)
                .collect();
            assert_eq!(got, guest_facets(n), "{v}");
        }
    }
}
