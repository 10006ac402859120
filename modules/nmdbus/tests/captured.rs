//! The D-Bus reader against nmcli on outputs captured from NetworkManager 1.30 (Debian 11),
//! 1.42 (Debian 12) and 1.52 (Debian 13): for each profile, NetworkManager's `GetSettings`
//! reply (`ID.dbus.json`) and nmcli's terse output for the same profile (`ID.nmcli`),
//! captured together with `nm_compare --capture` in lab hosts (the profiles of
//! tests/test_nm_quick.py: bridges, ports, a static and a DHCP uplink with most IP
//! properties away from their defaults, a MAC-bound and an unbound profile, a macvtap, a
//! guest's tap, loopback). Every property the modules read must come out as nmcli printed it.

use kvmnet_nmcli::parse_profiles;
use kvmnet_nmdbus::settings::{comparable, known, profile, NmVersion};
use std::path::Path;

/// (NM version, profile id, D-Bus settings, nmcli's profile) of every capture.
fn captures() -> Vec<(NmVersion, String, serde_json::Value, kvmnet_nmcli::Profile)> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let nm = NmVersion::parse(name.trim_start_matches("nm-")).expect("nm-VERSION");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".dbus.json"))
        {
            let id = f
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace(".dbus.json", "");
            let settings: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            let text = std::fs::read_to_string(dir.join(format!("{id}.nmcli"))).unwrap();
            let nmcli = parse_profiles(&text)
                .into_iter()
                .next()
                .expect("one profile");
            out.push((nm, id, settings, nmcli));
        }
    }
    out
}

#[test]
fn every_property_the_modules_read_is_as_nmcli_printed_it() {
    let all = captures();
    let mut per_version = std::collections::BTreeMap::new();
    let mut differences = Vec::new();
    for (nm, id, settings, nmcli) in &all {
        *per_version.entry(*nm).or_insert(0) += 1;
        let p = profile(settings, *nm).unwrap_or_else(|e| panic!("{id} on {nm:?}: {e:?}"));
        let mut keys: Vec<&String> = p.props.keys().chain(nmcli.props.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys.into_iter().filter(|k| known(k)) {
            let (a, b) = (comparable(p.get(k)), comparable(nmcli.get(k)));
            if a != b {
                differences.push(format!("{nm:?} {id} {k}: D-Bus '{a}', nmcli '{b}'"));
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // the three versions, each with the whole set
    assert_eq!(
        per_version.keys().copied().collect::<Vec<_>>(),
        vec![NmVersion(1, 30), NmVersion(1, 42), NmVersion(1, 52)]
    );
    assert!(per_version.values().all(|n| *n >= 10), "{per_version:?}");
}

#[test]
fn the_captures_hold_values_away_from_their_defaults() {
    // what the comparison above would not see if the captures held only defaults
    for (nm, id, settings, _) in captures().iter().filter(|c| c.1 == "uplink") {
        let p = profile(settings, *nm).unwrap();
        assert_eq!(
            p.get("ipv4.addresses"),
            Some("192.0.2.5/24, 192.0.2.6/24"),
            "{id}"
        );
        assert_eq!(p.get("ipv4.dns"), Some("1.1.1.1,8.8.8.8"));
        assert_eq!(p.get("ipv6.dns"), Some("2001:db8::53"));
        assert_eq!(
            p.get("ipv4.routes"),
            Some("198.51.100.0/24 192.0.2.254 10, 203.0.113.0/24")
        );
        assert_eq!(p.get("ipv6.addr-gen-mode"), Some("eui64"));
        assert_eq!(
            p.get("802-3-ethernet.cloned-mac-address"),
            Some("52:54:00:AA:BB:CC")
        );
        assert_eq!(p.get("connection.autoconnect"), Some("no"));
    }
    let ports: Vec<_> = captures()
        .into_iter()
        .filter(|c| c.1 == "p-ens32")
        .collect();
    assert_eq!(ports.len(), 3);
    for (nm, _, settings, _) in ports {
        let p = profile(&settings, nm).unwrap();
        assert_eq!(p.port_type(), Some("bridge"));
        assert!(p.controller().is_some());
        // a port has no IP configuration nmcli would print
        assert_eq!(p.get("ipv4.method"), None);
        assert_eq!(
            p.get("connection.controller").is_some(),
            nm >= NmVersion(1, 46)
        );
    }
}
